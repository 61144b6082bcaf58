package secrets_test

import "database/sql"

func nullString(s string) sql.NullString { return sql.NullString{String: s, Valid: true} }
