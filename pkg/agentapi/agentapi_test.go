package agentapi

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

func TestTokenAndClient(t *testing.T) {
	tok := Token("repl-pw")
	if tok == Token("other") || len(tok) != 64 || strings.Contains(tok, "repl-pw") {
		t.Fatalf("token %q", tok)
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !Authorized(r, tok) {
			http.Error(w, "missing or wrong bearer token", http.StatusUnauthorized)
			return
		}
		var topo Topology
		if r.Method == http.MethodPost {
			if err := json.NewDecoder(r.Body).Decode(&topo); err != nil {
				http.Error(w, err.Error(), http.StatusBadRequest)
				return
			}
		}
		_ = json.NewEncoder(w).Encode(Status{Pod: "p-0", Role: RolePrimary, Topology: topo})
	}))
	defer srv.Close()
	ctx := context.Background()
	st, err := Client{Token: tok}.SetTopology(ctx, srv.URL, Topology{Primary: "p-0", Epoch: 4})
	if err != nil || st.Topology.Epoch != 4 || st.Role != RolePrimary {
		t.Errorf("SetTopology: %+v %v", st, err)
	}
	if _, err := (Client{Token: Token("wrong")}).Status(ctx, srv.URL); err == nil || !strings.Contains(err.Error(), "401") {
		t.Errorf("a wrong token: %v", err)
	}
	r := httptest.NewRequest(http.MethodGet, "/", nil)
	if Authorized(r, "") {
		t.Error("an empty token authorizes a request without one")
	}
}
