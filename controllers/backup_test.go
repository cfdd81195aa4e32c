package controllers

import (
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	scalestackv1alpha1 "github.com/scalestack/scalestack/api/v1alpha1"
	"github.com/scalestack/scalestack/pkg/agentapi"
)

func TestBackupCondition(t *testing.T) {
	now := time.Date(2026, 12, 2, 4, 0, 0, 0, time.UTC)
	at := func(ago time.Duration) *time.Time { t := now.Add(-ago); return &t }
	ok := func(shard int32, ago time.Duration) shardArchive {
		return shardArchive{shard: shard, pod: "p", report: &agentapi.ArchiveStatus{LastSuccess: at(ago), LastFile: "shard-bin.000007"}}
	}
	cases := []struct {
		name   string
		shards []shardArchive
		status metav1.ConditionStatus
		reason string
		msg    string
	}{
		{"every shard archived", []shardArchive{ok(0, 10*time.Second), ok(1, time.Minute)}, metav1.ConditionTrue, scalestackv1alpha1.ReasonArchiving, "5m0s"},
		{"a failure names the cause and the shard", []shardArchive{ok(0, time.Second), {shard: 1, pod: "q", report: &agentapi.ArchiveStatus{
			LastSuccess: at(time.Hour), Reason: scalestackv1alpha1.ReasonCredentialsRejected, Error: "object store bucket lookup: CredentialsRejected: The access key ID you provided does not exist"}}},
			metav1.ConditionFalse, scalestackv1alpha1.ReasonCredentialsRejected, "shard 1 (q)"},
		{"a stall", []shardArchive{ok(0, 17*time.Minute)}, metav1.ConditionFalse, scalestackv1alpha1.ReasonArchivingStalled, "more than three archive intervals"},
		{"not stalled within three intervals and a minute", []shardArchive{ok(0, 15*time.Minute)}, metav1.ConditionTrue, scalestackv1alpha1.ReasonArchiving, ""},
		{"a primary not ready", []shardArchive{ok(0, 0), {shard: 1, why: "its primary p-1 is not ready"}}, metav1.ConditionUnknown, scalestackv1alpha1.ReasonArchivingPending, "p-1 is not ready"},
		{"no pass yet", []shardArchive{{shard: 0, report: &agentapi.ArchiveStatus{}}}, metav1.ConditionUnknown, scalestackv1alpha1.ReasonArchivingPending, "no archiving pass"},
		{"a failure outranks a pending shard", []shardArchive{{shard: 0, why: "x"}, {shard: 1, report: &agentapi.ArchiveStatus{Reason: scalestackv1alpha1.ReasonBucketMissing, Error: "bucket \"b\" does not exist"}}},
			metav1.ConditionFalse, scalestackv1alpha1.ReasonBucketMissing, "does not exist"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := backupCondition(backupObservation{enabled: true, interval: 5 * time.Minute, shards: tc.shards}, now)
			if c.Type != scalestackv1alpha1.ConditionBackupReady || c.Status != tc.status || c.Reason != tc.reason || !strings.Contains(c.Message, tc.msg) {
				t.Fatalf("got %s %s %q", c.Status, c.Reason, c.Message)
			}
		})
	}
}
