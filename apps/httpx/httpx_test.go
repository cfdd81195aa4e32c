package httpx

import (
	"bytes"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

type signup struct {
	Handle string `json:"handle"`
	Age    int    `json:"age"`
}

func TestDecodeJSON(t *testing.T) {
	cases := map[string]struct {
		ctype, body string
		status      int
	}{
		"ok":            {"application/json", `{"handle":"a","age":3}`, 0},
		"charset ok":    {"application/json; charset=utf-8", `{"handle":"a"}`, 0},
		"no type":       {"", `{}`, 415},
		"text":          {"text/plain", `{}`, 415},
		"syntax":        {"application/json", `{"handle":}`, 400},
		"unknown":       {"application/json", `{"x":1}`, 400},
		"type":          {"application/json", `{"age":"old"}`, 400},
		"trailing":      {"application/json", `{} {}`, 400},
		"trailing junk": {"application/json", `{}x`, 400},
		"empty":         {"application/json", ``, 400},
		"array":         {"application/json", `[1]`, 400},
		"too large":     {"application/json", `{"handle":"` + strings.Repeat("x", 100) + `"}`, 413},
	}
	for name, c := range cases {
		r := httptest.NewRequest("POST", "/", strings.NewReader(c.body))
		if c.ctype != "" {
			r.Header.Set("Content-Type", c.ctype)
		}
		var dst signup
		err := DecodeJSON(httptest.NewRecorder(), r, 64, &dst)
		var he *Error
		switch {
		case c.status == 0 && err != nil:
			t.Errorf("%s: %v", name, err)
		case c.status != 0 && (!errors.As(err, &he) || he.Status != c.status):
			t.Errorf("%s: got %v, want status %d", name, err, c.status)
		case c.status != 0 && he.Message == "":
			t.Errorf("%s: no reason", name)
		}
	}
}

// FuzzDecode: any body decodes or is refused with a 4xx, never a panic or a 5xx.
func FuzzDecode(f *testing.F) {
	for _, s := range []string{`{"handle":"a","age":1}`, `{`, `[]`, `{"age":1e400}`, `{"handle":"\ud800"}`, `{}{}`, "\x00"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		var dst signup
		err := Decode(bytes.NewReader(body), 1<<20, &dst)
		var he *Error
		if err != nil && (!errors.As(err, &he) || he.Status < 400 || he.Status >= 500) {
			t.Fatalf("%q: %v is not a 4xx", body, err)
		}
	})
}

func TestWriteErrorHidesInternalCauses(t *testing.T) {
	w := httptest.NewRecorder()
	WriteError(w, httptest.NewRequest("GET", "/", nil), errors.New("dial tcp 10.0.0.1:3306: password=hunter2"))
	if w.Code != http.StatusInternalServerError || strings.Contains(w.Body.String(), "hunter2") || strings.Contains(w.Body.String(), "10.0.0.1") {
		t.Fatalf("500 leaked its cause: %d %s", w.Code, w.Body)
	}
}
