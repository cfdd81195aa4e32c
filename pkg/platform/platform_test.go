package platform

import (
	"strings"
	"testing"
)

func TestRequiredTopicsHaveDistinctDLQs(t *testing.T) {
	seen := map[string]bool{}
	for _, topic := range RequiredTopics {
		for _, name := range []string{topic, topic + DLQSuffix} {
			if seen[name] {
				t.Errorf("topic %q listed twice", name)
			}
			seen[name] = true
		}
		if strings.HasSuffix(topic, DLQSuffix) {
			t.Errorf("required topic %q is itself a dead-letter topic", topic)
		}
	}
}

func TestBinary(t *testing.T) {
	if got := Binary("gateway"); got != "/usr/local/bin/gateway" {
		t.Errorf("Binary(gateway) = %q", got)
	}
}
