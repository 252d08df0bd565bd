"""Reports for heads of sales: calls versus deals per manager and period."""
