package v1alpha1

import (
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/util/validation"
)

// The CRD caps metadata.name at 30 characters; every child name derived from it must still be a
// valid DNS label, and a StatefulSet's name must leave room for the controller-revision-hash label
// ("<name>-<10 characters>") of its pods.
func TestLongestNamesAreValid(t *testing.T) {
	sp := &SocialPlatform{}
	sp.Name = strings.Repeat("a", 30)
	sp.Namespace = "ns"
	names := []string{
		sp.AppsConfigName(), sp.ShardMapName(), sp.DatabaseSecretName(), sp.DatabaseConfigName(),
		sp.CacheConfigName(), sp.CacheName(), sp.KafkaName(), sp.CDNOriginName(), sp.ArchiverName(),
		sp.ShardName(63), sp.ShardPrimaryName(63), sp.ShardReplicasName(63),
	}
	for _, c := range AppComponents {
		names = append(names, sp.ComponentName(c))
	}
	for _, n := range names {
		if errs := validation.IsDNS1035Label(n); len(errs) > 0 {
			t.Errorf("%s: %v", n, errs)
		}
	}
	for _, sts := range []string{sp.ShardPrimaryName(63), sp.ShardReplicasName(63), sp.CacheName()} {
		if rev := sts + "-0123456789"; len(rev) > validation.LabelValueMaxLength {
			t.Errorf("StatefulSet %s leaves no room for its revision label (%d characters)", sts, len(rev))
		}
		if pod := sts + "-4"; len(validation.IsDNS1123Subdomain(pod)) > 0 {
			t.Errorf("pod name %s invalid", pod)
		}
	}
}

func TestLabels(t *testing.T) {
	sp := &SocialPlatform{}
	sp.Name = "demo"
	l := sp.Labels("gateway")
	if l[LabelManagedBy] != ManagedByValue || l[LabelInstance] != "demo" || l[LabelComponent] != "gateway" {
		t.Errorf("labels %v", l)
	}
	for k := range l {
		if strings.HasPrefix(k, "argocd.argoproj.io/") {
			t.Errorf("Argo CD's label %s on a child", k)
		}
	}
	if sel := sp.SelectorLabels("gateway"); len(sel) != 3 {
		t.Errorf("selector %v: it must never change, so it holds only the identity labels", sel)
	}
}
