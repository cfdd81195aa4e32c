package controllers

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"time"

	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	scalestackv1alpha1 "github.com/scalestack/scalestack/api/v1alpha1"
	"github.com/scalestack/scalestack/controllers/render"
	"github.com/scalestack/scalestack/pkg/kafkatopics"
)

// AnnotationAppliedHash on an unstructured child is the hash of the configuration last applied
// to it: with no typed Extract function for custom resources, it is how a field the operator
// stopped setting is noticed.
const AnnotationAppliedHash = "scalestack.dev/applied-hash"

// kafkaObservation is what KafkaReady is computed from.
type kafkaObservation struct {
	mode scalestackv1alpha1.KafkaMode
	// strimziMissing: mode Strimzi, but the cluster does not serve kafka.strimzi.io.
	strimziMissing bool
	// unreachable: mode External, and the admin API could not be asked; the error says why.
	unreachable error
	// clusterReady and clusterMessage come from Strimzi's Ready condition on the Kafka.
	clusterReady   bool
	clusterMessage string
	topics         []scalestackv1alpha1.TopicStatus
	topicMessages  []string
	bootstrap      string
}

// strimziVersion returns the served version of Strimzi's Kafka kind (v1 preferred), or "" when
// Strimzi is not installed. The REST mapper re-discovers on a miss, so a Strimzi installed after
// the operator started is found on a later pass.
func (r *SocialPlatformReconciler) strimziVersion() (string, error) {
	mappings, err := r.Client.RESTMapper().RESTMappings(schema.GroupKind{Group: render.StrimziGroup, Kind: "Kafka"})
	if meta.IsNoMatchError(err) || (err == nil && len(mappings) == 0) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("discovering Strimzi: %w", err)
	}
	version := ""
	for _, m := range mappings {
		switch m.GroupVersionKind.Version {
		case "v1":
			return "v1", nil
		case "v1beta2":
			version = "v1beta2"
		}
	}
	return version, nil
}

// reconcileKafka converges the event log: through Strimzi's custom resources, or, for an External
// cluster, through the Kafka admin API. A Kafka problem is reported in KafkaReady and does not
// stop the other phases: the apps and data tier still converge.
func (r *SocialPlatformReconciler) reconcileKafka(ctx context.Context, s *scope) error {
	sp := s.sp
	s.kafka = kafkaObservation{mode: sp.Spec.Kafka.Mode}
	if sp.Spec.Kafka.Mode == scalestackv1alpha1.KafkaModeExternal {
		return r.reconcileExternalTopics(ctx, s)
	}
	version, err := r.strimziVersion()
	if err != nil {
		return err
	}
	if version == "" {
		s.kafka.strimziMissing = true
		// Without a watch on Strimzi's kinds, look again later for an installed Strimzi.
		s.requeueAfter(requeueMissingKinds)
		return nil
	}
	applied, err := r.applyTier(ctx, s, render.KafkaTier(sp, version))
	if err != nil {
		return err
	}
	for _, a := range applied {
		r.observeStrimzi(s, a.obj.(*unstructured.Unstructured).GetKind(), a.live)
	}
	s.kafka.bootstrap = strimziBootstrap(s.kafka.bootstrap, sp)
	return nil
}

func strimziBootstrap(observed string, sp *scalestackv1alpha1.SocialPlatform) string {
	if observed != "" {
		return observed
	}
	return render.StrimziBootstrap(sp)
}

// observeStrimzi reads Strimzi's Ready conditions and the bootstrap address from a live object.
func (r *SocialPlatformReconciler) observeStrimzi(s *scope, kind string, live *unstructured.Unstructured) {
	ready, msg := false, "not reconciled by Strimzi yet"
	if live != nil {
		conds, _, _ := unstructured.NestedSlice(live.Object, "status", "conditions")
		for _, c := range conds {
			cm, _ := c.(map[string]any)
			if cm["type"] == "Ready" {
				ready = cm["status"] == "True"
				if m, _ := cm["message"].(string); m != "" {
					msg = m
				} else if !ready {
					msg = fmt.Sprint(cm["reason"])
				}
			}
		}
	}
	switch kind {
	case "Kafka":
		s.kafka.clusterReady, s.kafka.clusterMessage = ready, msg
		if live != nil {
			listeners, _, _ := unstructured.NestedSlice(live.Object, "status", "listeners")
			for _, l := range listeners {
				lm, _ := l.(map[string]any)
				if lm["name"] == "plain" {
					s.kafka.bootstrap, _ = lm["bootstrapServers"].(string)
				}
			}
		}
	case "KafkaTopic":
		name := ""
		if live != nil {
			name, _, _ = unstructured.NestedString(live.Object, "spec", "topicName")
		}
		s.kafka.topics = append(s.kafka.topics, scalestackv1alpha1.TopicStatus{Name: name, Ready: ready})
		if !ready {
			s.kafka.topicMessages = append(s.kafka.topicMessages, name+": "+msg)
		}
	}
}

// adminClients keeps one Kafka admin client per External cluster, so that a pass does not dial
// the brokers anew.
type adminClients struct {
	mu      sync.Mutex
	clients map[string]*kadm.Client
}

func (a *adminClients) get(seeds []string) (*kadm.Client, error) {
	key := strings.Join(seeds, ",")
	a.mu.Lock()
	defer a.mu.Unlock()
	if c, ok := a.clients[key]; ok {
		return c, nil
	}
	cl, err := kgo.NewClient(kafkatopics.ClientOptions(seeds)...)
	if err != nil {
		return nil, fmt.Errorf("creating Kafka client: %w", err)
	}
	if a.clients == nil {
		a.clients = map[string]*kadm.Client{}
	}
	a.clients[key] = kadm.NewClient(cl)
	return a.clients[key], nil
}

// requeueMissingKinds is how soon a platform whose optional kinds (Strimzi, prometheus-operator)
// are missing looks for them again: nothing watches kinds that do not exist.
const requeueMissingKinds = time.Minute

// externalRecheck is how often an External cluster's topics are checked for drift: nothing
// watches them.
const externalRecheck = 5 * time.Minute

// reconcileExternalTopics creates and grows the topics of an External cluster through the admin
// API. It never deletes a topic.
func (r *SocialPlatformReconciler) reconcileExternalTopics(ctx context.Context, s *scope) error {
	sp := s.sp
	s.kafka.bootstrap = strings.Join(sp.Spec.Kafka.BootstrapServers, ",")
	s.requeueAfter(externalRecheck)
	adm, err := r.admins.get(sp.Spec.Kafka.BootstrapServers)
	if err != nil {
		s.kafka.unreachable = err
		return nil
	}
	var want []kafkatopics.Topic
	for _, t := range render.Topics(sp) {
		want = append(want, kafkatopics.Topic{Name: t.Name, Partitions: t.Partitions, ReplicationFactor: int16(t.ReplicationFactor), RetentionMs: t.RetentionMs})
	}
	actx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	statuses, err := kafkatopics.Ensure(actx, adm, want)
	if err != nil {
		s.kafka.unreachable = err
		s.requeueAfter(30 * time.Second)
		return nil
	}
	for _, st := range statuses {
		s.kafka.topics = append(s.kafka.topics, scalestackv1alpha1.TopicStatus{Name: st.Name, Ready: st.Ready})
		if !st.Ready {
			s.kafka.topicMessages = append(s.kafka.topicMessages, st.Name+": "+st.Message)
		}
		if st.Changed {
			s.note("KafkaTopic(external)/" + st.Name)
		}
	}
	return nil
}
