"""The machinery behind the definitions: rendering the SQL files, the warehouse and its
publication, the export reader and its quarantine, and running checks."""
