"""Who changed what, through which operation, with which result."""
