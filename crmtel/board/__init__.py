"""The heads' live board: who waits in which queue, who talks, and today's answered/missed/called-back counts."""
