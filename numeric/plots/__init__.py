"""Figure code shared by the commands."""
