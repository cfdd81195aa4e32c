package apptest

import (
	"database/sql"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"

	"github.com/scalestack/scalestack/internal/localservers"
)

var rootDBs sync.Map

// rootDB is a root pool on m, shared by the tests (a pool per poll would exhaust connections).
func rootDB(t testing.TB, m *localservers.MariaDB) *sql.DB {
	t.Helper()
	if db, ok := rootDBs.Load(m); ok {
		return db.(*sql.DB)
	}
	db, err := sql.Open("mysql", m.DSN("root", ""))
	if err != nil {
		t.Fatal(err)
	}
	db.SetMaxOpenConns(4)
	actual, _ := rootDBs.LoadOrStore(m, db)
	return actual.(*sql.DB)
}

func get(t testing.TB, url string) string {
	t.Helper()
	res, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = res.Body.Close() }()
	b, _ := io.ReadAll(res.Body)
	return string(b)
}

func contains(s, sub string) bool { return strings.Contains(s, sub) }

func readAll(res *http.Response) string {
	b, _ := io.ReadAll(res.Body)
	return string(b)
}
