"""Storage: typed models, engines and sessions, migrations, queries and projections."""
