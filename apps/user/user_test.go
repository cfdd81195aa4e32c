package user

import (
	"strings"
	"testing"
)

func TestValidateSignup(t *testing.T) {
	ok := SignupRequest{Handle: "ada_lovelace", Email: "ada@example.com", Password: "analytical engine", DisplayName: "Ada"}
	if err := ValidateSignup(&ok); err != nil {
		t.Fatal(err)
	}
	bad := map[string]func(r *SignupRequest){
		"handle short":   func(r *SignupRequest) { r.Handle = "ab" },
		"handle upper":   func(r *SignupRequest) { r.Handle = "Ada" },
		"handle space":   func(r *SignupRequest) { r.Handle = "ada l" },
		"email plain":    func(r *SignupRequest) { r.Email = "ada" },
		"email named":    func(r *SignupRequest) { r.Email = "Ada <ada@example.com>" },
		"email crlf":     func(r *SignupRequest) { r.Email = "ada@example.com\r\nBcc: x@y" },
		"password short": func(r *SignupRequest) { r.Password = "short" },
		"password long":  func(r *SignupRequest) { r.Password = strings.Repeat("p", 129) },
		"name empty":     func(r *SignupRequest) { r.DisplayName = "" },
		"name blank":     func(r *SignupRequest) { r.DisplayName = "  " },
		"name long":      func(r *SignupRequest) { r.DisplayName = strings.Repeat("n", 65) },
		"name control":   func(r *SignupRequest) { r.DisplayName = "a\x07" },
		"name invalid":   func(r *SignupRequest) { r.DisplayName = "\xff" },
	}
	for name, mutate := range bad {
		r := ok
		mutate(&r)
		if err := ValidateSignup(&r); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

// FuzzValidateSignup: validation never panics, and what it accepts is within the bounds.
func FuzzValidateSignup(f *testing.F) {
	f.Add("ada", "ada@example.com", "password1", "Ada")
	f.Add("x'--", "a@b", "\x00\x00\x00\x00\x00\x00\x00\x00", "\u202e")
	f.Fuzz(func(t *testing.T, handle, email, password, name string) {
		r := SignupRequest{Handle: handle, Email: email, Password: password, DisplayName: name}
		if ValidateSignup(&r) == nil {
			if !handleRE.MatchString(handle) || len(email) > 254 || strings.ContainsAny(email, "\r\n") {
				t.Fatalf("accepted %+v", r)
			}
		}
	})
}
