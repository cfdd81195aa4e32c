package controllers

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"reflect"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// FieldManager is the one field manager the reconciler writes children with.
const FieldManager = "scalestack-operator"

// applyConfiguration is a typed apply configuration of a namespaced object.
type applyConfiguration interface {
	runtime.ApplyConfiguration
	GetName() *string
	GetNamespace() *string
}

// applyMode says whether an apply writes, or asks the API server what it would say (server-side
// dry-run: admission, validation and policies run, nothing is stored).
type applyMode int

const (
	// applyWrite converges the child.
	applyWrite applyMode = iota
	// dryRunChanged dry-runs the child when it is missing or differs from the live object.
	dryRunChanged
	// dryRunMissing dry-runs the child only when it does not exist yet: for the children whose
	// rendering depends on what the phase observes (the shards, the credentials), which a
	// preflight cannot render exactly as the phase will for a live object.
	dryRunMissing
)

// options are the apply options of the mode.
func (m applyMode) options() []client.ApplyOption {
	opts := []client.ApplyOption{client.FieldOwner(FieldManager), client.ForceOwnership}
	if m != applyWrite {
		opts = append(opts, client.DryRunAll)
	}
	return opts
}

// applyResult says what an apply did.
type applyResult string

const (
	resultUnchanged applyResult = "Unchanged"
	resultCreated   applyResult = "Created"
	resultUpdated   applyResult = "Updated"
)

// apply converges one child with server-side apply, after a no-op check: the fields this
// operator owns on the live object (extracted from its managedFields entry) are compared with
// the desired ones, and no request is sent when they match. A converged platform therefore
// costs no write at all. A field someone else changed moves out of our managedFields entry, the
// comparison fails, and the forced apply takes it back.
//
// live is an empty object of the child's kind, filled from the cache; extract is the kind's
// generated Extract<Kind> function.
func apply[AC applyConfiguration, O client.Object](ctx context.Context, c client.Client, desired AC, live O,
	extract func(O, string) (AC, error), mode applyMode,
) (applyResult, error) {
	key := types.NamespacedName{Namespace: deref(desired.GetNamespace()), Name: deref(desired.GetName())}
	result := resultUpdated
	switch err := c.Get(ctx, key, live); {
	case apierrors.IsNotFound(err):
		result = resultCreated
	case err != nil:
		return "", fmt.Errorf("getting %T %s: %w", live, key, err)
	case mode == dryRunMissing:
		return resultUnchanged, nil
	default:
		current, err := extract(live, FieldManager)
		if err != nil {
			return "", fmt.Errorf("extracting applied fields of %T %s: %w", live, key, err)
		}
		same, err := sameApplied(current, desired)
		if err != nil {
			return "", err
		}
		if same {
			return resultUnchanged, nil
		}
	}
	if err := c.Apply(ctx, desired, mode.options()...); err != nil {
		return "", fmt.Errorf("applying %T %s: %w", live, key, err)
	}
	return result, nil
}

// sameApplied compares two apply configurations by their JSON form, which is what the API server
// receives: typed comparison would see a nil map and an empty one as different.
func sameApplied(a, b any) (bool, error) {
	var ma, mb map[string]any
	for _, p := range []struct {
		v   any
		dst *map[string]any
	}{{a, &ma}, {b, &mb}} {
		raw, err := json.Marshal(p.v)
		if err != nil {
			return false, fmt.Errorf("encoding apply configuration: %w", err)
		}
		if err := json.Unmarshal(raw, p.dst); err != nil {
			return false, fmt.Errorf("decoding apply configuration: %w", err)
		}
	}
	return reflect.DeepEqual(ma, mb), nil
}

// applyUnstructured converges a custom resource with server-side apply. The no-op check: the
// live object carries the hash of the last applied configuration, and every field we set still
// has our value. It returns the live object (nil right after a write) and what the apply did.
func (r *SocialPlatformReconciler) applyUnstructured(ctx context.Context, s *scope, desired *unstructured.Unstructured, mode applyMode) (*unstructured.Unstructured, applyResult, error) {
	raw, err := json.Marshal(desired.Object)
	if err != nil {
		return nil, "", fmt.Errorf("encoding %s: %w", desired.GetKind(), err)
	}
	sum := sha256.Sum256(raw)
	hash := hex.EncodeToString(sum[:])[:16]
	ann := desired.GetAnnotations()
	if ann == nil {
		ann = map[string]string{}
	}
	ann[AnnotationAppliedHash] = hash
	desired.SetAnnotations(ann)

	live := &unstructured.Unstructured{}
	live.SetGroupVersionKind(desired.GroupVersionKind())
	result := resultUpdated
	switch err := r.Client.Get(ctx, client.ObjectKeyFromObject(desired), live); {
	case apierrors.IsNotFound(err):
		result = resultCreated
	case err != nil:
		return nil, "", fmt.Errorf("getting %s %s: %w", desired.GetKind(), desired.GetName(), err)
	case mode == dryRunMissing:
		return live, resultUnchanged, nil
	default:
		if live.GetAnnotations()[AnnotationAppliedHash] == hash && subset(desired.Object, live.Object) {
			return live, resultUnchanged, nil
		}
	}
	if err := r.Client.Apply(ctx, client.ApplyConfigurationFromUnstructured(desired), mode.options()...); err != nil {
		return nil, "", fmt.Errorf("applying %s %s: %w", desired.GetKind(), desired.GetName(), err)
	}
	if mode != applyWrite {
		return nil, result, nil
	}
	s.record(desired.GetKind(), desired.GetName(), result)
	return nil, result, nil
}

// subset reports whether every field of want has the same value in have. Numbers compare by
// value: JSON decoding gives int64 on one side and float64 on the other.
func subset(want, have any) bool {
	switch w := want.(type) {
	case map[string]any:
		h, ok := have.(map[string]any)
		if !ok {
			return false
		}
		for k, v := range w {
			if !subset(v, h[k]) {
				return false
			}
		}
		return true
	case []any:
		h, ok := have.([]any)
		if !ok || len(h) != len(w) {
			return false
		}
		for i := range w {
			if !subset(w[i], h[i]) {
				return false
			}
		}
		return true
	case int64:
		return numEqual(float64(w), have)
	case int32:
		return numEqual(float64(w), have)
	case int:
		return numEqual(float64(w), have)
	case float64:
		return numEqual(w, have)
	default:
		return reflect.DeepEqual(want, have)
	}
}

func numEqual(w float64, have any) bool {
	switch h := have.(type) {
	case int64:
		return float64(h) == w
	case float64:
		return h == w
	case int:
		return float64(h) == w
	}
	return false
}

// keepOwnManagedFields is the cache's transform: it drops every managedFields entry but this
// operator's own (the reconciler's and the autoscaler's). Those entries are about 40% of an
// object's size and only ours are needed: for the no-op check in apply, and to hand replicas over.
func keepOwnManagedFields(obj any) (any, error) {
	accessor, ok := obj.(metav1.Object)
	if !ok {
		return obj, nil
	}
	entries := accessor.GetManagedFields()
	if len(entries) == 0 {
		return obj, nil
	}
	kept := entries[:0:0]
	for _, e := range entries {
		if e.Manager == FieldManager || e.Manager == AutoscalerFieldManager {
			kept = append(kept, e)
		}
	}
	accessor.SetManagedFields(kept)
	return obj, nil
}

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}
