package feed

import (
	"testing"
	"time"

	"github.com/scalestack/scalestack/apps/post"
)

func TestScoreRanksRecencyAndEngagement(t *testing.T) {
	now := time.Now()
	fresh := &post.Post{CreatedAt: now.Add(-time.Hour)}
	older := &post.Post{CreatedAt: now.Add(-3 * time.Hour)}
	olderLiked := &post.Post{CreatedAt: now.Add(-3 * time.Hour), Likes: 7}
	ancientViral := &post.Post{CreatedAt: now.Add(-72 * time.Hour), Likes: 1000}
	if !(Score(fresh, now) > Score(older, now)) {
		t.Error("a newer post must outrank an older one with the same likes")
	}
	if !(Score(olderLiked, now) > Score(fresh, now)) {
		t.Error("7 likes must be worth more than 2 hours")
	}
	if !(Score(fresh, now) > Score(ancientViral, now)) {
		t.Error("engagement grows logarithmically: a 3-day-old post must not beat a fresh one")
	}
	future := &post.Post{CreatedAt: now.Add(time.Hour)}
	if Score(future, now) != Score(&post.Post{CreatedAt: now}, now) {
		t.Error("clock skew must not rank a post above now")
	}
}
