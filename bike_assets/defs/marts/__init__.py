"""The marts: the tables marketing and finance read (docs/tables.md, "marts.*"), one module
per table."""
