"""Stage functions (app layer): one module per pipeline step, called alike by the CLI, DVC and Prefect tasks.

A stage reads its inputs, calls pure components, and writes its artifacts atomically only after every check
passed, so a bad input leaves nothing half-written behind.
"""
