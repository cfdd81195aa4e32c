package v1alpha1

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"sigs.k8s.io/yaml"
)

// The defaults are written once, as Go constants; the CRD markers must carry the same values.
func TestCRDDefaultsMatchTheGoDefaults(t *testing.T) {
	raw, err := os.ReadFile(filepath.Join("..", "..", "config", "crd", "bases", "scalestack.dev_socialplatforms.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var crd struct {
		Spec struct {
			Versions []struct {
				Schema struct {
					OpenAPIV3Schema map[string]any `json:"openAPIV3Schema"`
				} `json:"schema"`
			} `json:"versions"`
		} `json:"spec"`
	}
	if err := yaml.Unmarshal(raw, &crd); err != nil {
		t.Fatal(err)
	}
	root := crd.Spec.Versions[0].Schema.OpenAPIV3Schema
	inCRD := map[string]any{}
	collectDefaults(root, "", inCRD)
	for path, want := range CRDDefaults {
		got, ok := inCRD[path]
		if !ok {
			t.Errorf("%s: the CRD has no default; the Go default is %v", path, want)
			continue
		}
		wantJSON, _ := json.Marshal(want)
		gotJSON, _ := json.Marshal(got)
		if !reflect.DeepEqual(normalize(wantJSON), normalize(gotJSON)) {
			t.Errorf("%s: the CRD defaults to %s, the Go default is %s", path, gotJSON, wantJSON)
		}
	}
	for path := range inCRD {
		if _, ok := CRDDefaults[path]; !ok {
			t.Errorf("%s: a CRD default with no Go constant in CRDDefaults", path)
		}
	}
}

// collectDefaults records every property's default by its path (arrays' items as "[]").
func collectDefaults(schema map[string]any, path string, out map[string]any) {
	if d, ok := schema["default"]; ok && path != "" {
		out[path] = d
	}
	if props, ok := schema["properties"].(map[string]any); ok {
		for name, p := range props {
			if ps, ok := p.(map[string]any); ok {
				collectDefaults(ps, strings.TrimPrefix(path+"."+name, "."), out)
			}
		}
	}
	if items, ok := schema["items"].(map[string]any); ok {
		collectDefaults(items, path+"[]", out)
	}
}

func normalize(raw []byte) any {
	var v any
	if err := json.Unmarshal(raw, &v); err != nil {
		panic(fmt.Sprint(err))
	}
	return v
}
