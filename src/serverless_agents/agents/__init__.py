"""Built-in agents, one module per agent family; each imports its client library only where it is used,
so a Lambda bundle without that family's extra can still import the module (the api function does)."""
