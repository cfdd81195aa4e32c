// Package argocd holds the Argo CD resource customizations for SocialPlatform, laid out as Argo
// CD's own resource_customizations/<group>/<kind>/ so they can be contributed upstream. Health runs
// the health script in gopher-lua, the Lua interpreter Argo CD embeds, so the tests can check it
// over fixtures (health_test.yaml, as Argo CD's own test does) and over live platforms.
package argocd

import (
	_ "embed"
	"encoding/json"
	"fmt"

	lua "github.com/yuin/gopher-lua"
)

// HealthScript is the health check to install in argocd-cm.
//
//go:embed resource_customizations/scalestack.dev/SocialPlatform/health.lua
var HealthScript string

// Health runs HealthScript over obj (a SocialPlatform as JSON decodes it, or any value that
// marshals to one) and returns Argo CD's health status and message.
func Health(obj any) (status, message string, err error) {
	m, ok := obj.(map[string]any)
	if !ok {
		raw, err := json.Marshal(obj)
		if err != nil {
			return "", "", err
		}
		if err := json.Unmarshal(raw, &m); err != nil {
			return "", "", err
		}
	}
	L := lua.NewState()
	defer L.Close()
	L.SetGlobal("obj", toLua(L, m))
	if err := L.DoString(HealthScript); err != nil {
		return "", "", fmt.Errorf("health.lua: %w", err)
	}
	ret, ok := L.Get(-1).(*lua.LTable)
	if !ok {
		return "", "", fmt.Errorf("health.lua returned %s, not a table", L.Get(-1).Type())
	}
	return ret.RawGetString("status").String(), ret.RawGetString("message").String(), nil
}

// toLua converts decoded JSON (or YAML) into Lua values, as Argo CD hands objects to its scripts.
func toLua(L *lua.LState, v any) lua.LValue {
	switch x := v.(type) {
	case map[string]any:
		t := L.NewTable()
		for k, val := range x {
			t.RawSetString(k, toLua(L, val))
		}
		return t
	case []any:
		t := L.NewTable()
		for _, val := range x {
			t.Append(toLua(L, val))
		}
		return t
	case string:
		return lua.LString(x)
	case float64:
		return lua.LNumber(x)
	case int64:
		return lua.LNumber(x)
	case bool:
		return lua.LBool(x)
	default:
		return lua.LNil
	}
}
