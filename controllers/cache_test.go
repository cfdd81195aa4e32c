package controllers

import "testing"

func TestCacheOptionsWatchNamespaces(t *testing.T) {
	if o := CacheOptions(); o.DefaultNamespaces != nil {
		t.Errorf("no namespaces given, yet the cache is limited to %v", o.DefaultNamespaces)
	}
	o := CacheOptions("team-a", "team-b")
	if _, ok := o.DefaultNamespaces["team-a"]; !ok || len(o.DefaultNamespaces) != 2 {
		t.Errorf("watched namespaces %v, want team-a and team-b", o.DefaultNamespaces)
	}
	if o.DefaultLabelSelector == nil || o.DefaultLabelSelector.Empty() {
		t.Errorf("limiting namespaces dropped the managed-by selector")
	}
}
