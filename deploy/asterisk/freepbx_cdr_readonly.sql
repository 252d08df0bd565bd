-- crmtel's CDR source on FreePBX: a read-only MariaDB user for asteriskcdrdb.cdr.
-- Run as root on the FreePBX host:   mysql < freepbx_cdr_readonly.sql
-- (choose your own password; crmtel runs on the same host, so the user exists for localhost only).
-- Then in crmtel's config, [ami] (or the [[pbx]]):
--     cdr = "mysql://crmtel_cdr:CHANGE-ME@127.0.0.1/asteriskcdrdb"
-- or, to keep the password out of the file, CRMTEL_AMI__CDR in /etc/crmtel/crmtel.env.
CREATE USER IF NOT EXISTS 'crmtel_cdr'@'localhost' IDENTIFIED BY 'CHANGE-ME';
CREATE USER IF NOT EXISTS 'crmtel_cdr'@'127.0.0.1' IDENTIFIED BY 'CHANGE-ME';
-- SELECT on the one table, nothing else: no other database, no write, no grant option.
GRANT SELECT ON asteriskcdrdb.cdr TO 'crmtel_cdr'@'localhost';
GRANT SELECT ON asteriskcdrdb.cdr TO 'crmtel_cdr'@'127.0.0.1';
FLUSH PRIVILEGES;
