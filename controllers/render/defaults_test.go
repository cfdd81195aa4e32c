package render

import (
	"strings"
	"testing"
	"time"

	scalestackv1alpha1 "github.com/scalestack/scalestack/api/v1alpha1"
)

func TestBackupTooOld(t *testing.T) {
	cases := []struct {
		schedule string
		want     time.Duration
	}{
		{"", 36 * time.Hour}, // the default, daily at 03:00
		{"0 */6 * * *", 9 * time.Hour},
		{"@hourly", 2 * time.Hour}, // never under two hours
		{"0 3 * * 0", 252 * time.Hour},
		{"0 3 1,15 * *", 24 * time.Hour * 17 * 3 / 2}, // the longest gap: the 15th to the 1st of a 31-day month
	}
	for _, tc := range cases {
		sp := &scalestackv1alpha1.SocialPlatform{}
		sp.Spec.Database.Backup = &scalestackv1alpha1.BackupSpec{Schedule: tc.schedule}
		if got := BackupTooOld(sp); got != tc.want {
			t.Errorf("%q: %v, want %v", tc.schedule, got, tc.want)
		}
	}
	sp := &scalestackv1alpha1.SocialPlatform{}
	sp.Spec.Database.Backup = &scalestackv1alpha1.BackupSpec{Schedule: "61 * * * *"}
	if _, err := BackupSchedule(sp); err == nil || !strings.Contains(err.Error(), "spec.database.backup.schedule") {
		t.Errorf("an out-of-range minute: %v", err)
	}
}
