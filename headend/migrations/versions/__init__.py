"""Head-end migration revisions, oldest first."""
