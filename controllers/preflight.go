package controllers

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"strings"

	"golang.org/x/sync/errgroup"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/types"
	ctrl "sigs.k8s.io/controller-runtime"

	scalestackv1alpha1 "github.com/scalestack/scalestack/api/v1alpha1"
	"github.com/scalestack/scalestack/controllers/render"
)

// The preflight: before a pass writes anything for a new spec (a generation it has not checked),
// every child the spec renders is sent to the API server as a server-side dry-run. Validation,
// defaulting, admission webhooks, ValidatingAdmissionPolicies and quotas on object counts all run,
// nothing is stored. A refusal stops the pass before its first write, so a spec the cluster would
// reject is never half-applied, and the refusal is reported as InvalidSpec naming the
// SocialPlatform field the child's refused field comes from. CEL at admission catches most bad
// input before this (api/v1alpha1); the preflight covers what CEL cannot know: the cluster's own
// policies and anything a child's API validates that the SocialPlatform schema does not.

// A refused spec is not half-applied, and the platform is not left unattended either: the pass
// goes on with the last spec the API server accepted (kept in the <name>-accepted-spec ConfigMap),
// so failover, backups and the autoscaler keep working while Ready, Degraded and Stalled say
// InvalidSpec for the newer generation. A platform that never had a spec accepted gets nothing.

// invalidSpecError is a child the API server refused in the preflight, traced to the spec field
// it comes from.
type invalidSpecError struct {
	field string
	child string
	err   error
}

func (e *invalidSpecError) Error() string {
	return fmt.Sprintf("%s: the API server refuses %s rendered from it: %s", e.field, e.child, apiMessage(e.err))
}

func (e *invalidSpecError) Unwrap() error { return e.err }

// isInvalidSpec says whether err holds a preflight refusal.
func isInvalidSpec(err error) bool {
	var inv *invalidSpecError
	return errors.As(err, &inv)
}

// preflight dry-runs the children of a generation the reconciler has not checked yet. It returns
// an *invalidSpecError for a refused child, another error for what a retry may fix (nothing is
// remembered then), and nil once the generation passed, after which it costs nothing.
func (r *SocialPlatformReconciler) preflight(ctx context.Context, s *scope) error {
	sp := s.sp
	if g, ok := r.preflighted.Load(sp.UID); ok && g.(int64) == sp.Generation {
		return nil
	}
	tiers, err := r.preflightTiers(s)
	if err != nil {
		return err
	}
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(applyConcurrency)
	for _, t := range tiers {
		for _, obj := range t.tier.Objects() {
			g.Go(func() error {
				a, err := r.applyObject(gctx, s, obj, t.mode)
				if err == nil {
					if a.result != resultUnchanged {
						preflightDryRuns.WithLabelValues("accepted").Inc()
					}
					return nil
				}
				preflightDryRuns.WithLabelValues("refused").Inc()
				if !rejected(err) {
					return err
				}
				kind, name, component := describe(obj)
				return &invalidSpecError{field: specField(kind, name, component, causeField(err)), child: kind + " " + name, err: err}
			})
		}
	}
	if err := g.Wait(); err != nil {
		return err
	}
	accepted, err := render.AcceptedSpecConfigMap(sp)
	if err != nil {
		return err
	}
	if _, err := r.applyObject(ctx, s, accepted, applyWrite); err != nil {
		return err
	}
	r.preflighted.Store(sp.UID, sp.Generation)
	return nil
}

// admitSpec runs the preflight. When it refuses the spec, the pass continues with the last
// accepted one (s.sp's spec is replaced; its status is still written for the live generation),
// and the refusal is returned to be joined to the pass's result. It returns stop when the pass
// must not go on: nothing was ever accepted, or the preflight could not run.
func (r *SocialPlatformReconciler) admitSpec(ctx context.Context, s *scope) (refused error, stop bool) {
	err := r.preflight(ctx, s)
	if err == nil {
		return nil, false
	}
	if !isInvalidSpec(err) {
		return err, true
	}
	live := &corev1.ConfigMap{}
	found, gerr := r.getOptional(ctx, s.sp.Namespace, s.sp.AcceptedSpecName(), live)
	if gerr != nil {
		return errors.Join(err, gerr), true
	}
	if !found {
		return err, true
	}
	var spec scalestackv1alpha1.SocialPlatformSpec
	if uerr := json.Unmarshal([]byte(live.Data[render.AcceptedSpecKey]), &spec); uerr != nil {
		return errors.Join(err, fmt.Errorf("reading %s: %w", s.sp.AcceptedSpecName(), uerr)), true
	}
	ctrl.LoggerFrom(ctx).Info("Spec refused in the preflight; converging the last accepted one",
		"acceptedGeneration", live.Data["generation"], "refusal", err.Error())
	s.sp.Spec = spec
	return err, false
}

// preflightTier is a tier and how the preflight sends it.
type preflightTier struct {
	tier render.Tier
	mode applyMode
}

// preflightTiers renders what the phases will apply. The tiers rendered from the platform alone
// are dry-run wherever they differ from the live objects. The credentials and the shards depend
// on what their phases observe (passwords, primaries, claim sizes), so only the ones that do not
// exist yet are dry-run; a refused update of a live shard is reported by the database phase.
func (r *SocialPlatformReconciler) preflightTiers(s *scope) ([]preflightTier, error) {
	sp := s.sp
	placeholders := map[string][]byte{}
	for _, k := range render.SecretKeys {
		placeholders[k] = []byte("preflight")
	}
	data, err := render.DataTier(sp, render.DataInputs{AgentImage: appsImage(sp, r.DefaultAppsImage)})
	if err != nil {
		return nil, &invalidSpecError{field: "spec.database", child: "the data tier", err: err}
	}
	installed, err := r.monitoringInstalled()
	if err != nil {
		return nil, err
	}
	monitoring, err := render.MonitoringTier(sp, installed)
	if err != nil {
		return nil, &invalidSpecError{field: "spec.slo", child: "the monitoring tier", err: err}
	}
	tiers := []preflightTier{
		{render.SecretsTier(sp, placeholders), dryRunMissing},
		{data, dryRunMissing},
		{render.NetworkTier(sp), dryRunChanged},
		{render.CacheTier(sp), dryRunChanged},
		{render.AppsTier(sp, r.DefaultAppsImage), dryRunChanged},
		{monitoring, dryRunChanged},
		{render.ArchiveTier(sp, r.DefaultAppsImage), dryRunChanged},
		{render.EdgeTier(sp), dryRunChanged},
	}
	if sp.Spec.Kafka.Mode != scalestackv1alpha1.KafkaModeExternal {
		version, err := r.strimziVersion()
		if err != nil {
			return nil, err
		}
		if version != "" {
			tiers = append(tiers, preflightTier{render.KafkaTier(sp, version), dryRunChanged})
		}
	}
	return tiers, nil
}

// forgetPreflight drops what the preflight remembers of a deleted platform.
func (r *SocialPlatformReconciler) forgetPreflight(uid types.UID) { r.preflighted.Delete(uid) }

// describe reads a rendered object's kind, name and component label.
func describe(obj render.Object) (kind, name, component string) {
	var m struct {
		Kind     string `json:"kind"`
		Metadata struct {
			Name   string            `json:"name"`
			Labels map[string]string `json:"labels"`
		} `json:"metadata"`
	}
	raw, err := json.Marshal(obj)
	if err == nil {
		_ = json.Unmarshal(raw, &m)
	}
	return m.Kind, m.Metadata.Name, m.Metadata.Labels[scalestackv1alpha1.LabelComponent]
}

// causeField is the first field the API server names in its refusal ("" when it names none, as
// a webhook or a policy without a fieldPath may).
func causeField(err error) string {
	var st apierrors.APIStatus
	if !errors.As(err, &st) || st.Status().Details == nil {
		return ""
	}
	for _, c := range st.Status().Details.Causes {
		if c.Field != "" {
			return c.Field
		}
	}
	return ""
}

// apiMessage is the API server's own words, without the wrapping the apply adds.
func apiMessage(err error) string {
	var st apierrors.APIStatus
	if errors.As(err, &st) && st.Status().Message != "" {
		return st.Status().Message
	}
	return err.Error()
}

// fieldRule traces a refused child field to the spec field it is rendered from.
type fieldRule struct {
	kind  string         // the child's kind; "" for any
	field *regexp.Regexp // the refused field of the child
	spec  func(name, component string) string
}

var (
	isAppComponent = map[string]bool{}
	fieldRules     []fieldRule
)

func init() {
	for _, c := range scalestackv1alpha1.AppComponents {
		isAppComponent[string(c)] = true
	}
	fixed := func(f string) func(string, string) string { return func(string, string) string { return f } }
	ingress := func(field string) func(string, string) string {
		return func(name, _ string) string {
			if strings.HasSuffix(name, "-site") {
				return "spec.ingress." + field
			}
			if field == "host" {
				return "spec.cdn.originHost"
			}
			return "spec.cdn." + field
		}
	}
	byComponent := func(leaf string) func(string, string) string {
		return func(_, component string) string {
			switch {
			case isAppComponent[component]:
				return "spec.apps." + component + "." + leaf
			case component == "database":
				return "spec.database." + leaf
			}
			return ""
		}
	}
	re := regexp.MustCompile
	fieldRules = []fieldRule{
		{"", re(`^metadata\.name$`), fixed("metadata.name")},
		{"PrometheusRule", re(`labels`), fixed("spec.observability.ruleLabels")},
		{"CronJob", re(`\.schedule$`), fixed("spec.database.archive.schedule")},
		{"Ingress", re(`ingressClassName`), ingress("ingressClassName")},
		{"Ingress", re(`\.tls`), ingress("tlsSecretName")},
		{"Ingress", re(`\.host$|^spec\.rules`), ingress("host")},
		{"StatefulSet", re(`volumeClaimTemplates.*storageClassName`), fixed("spec.database.storage.storageClassName")},
		{"StatefulSet", re(`volumeClaimTemplates`), fixed("spec.database.storage.size")},
		{"", re(`\.resources`), byComponent("resources")},
		{"", re(`\.image$`), func(_, component string) string {
			switch component {
			case "database":
				return "spec.database.image"
			case "cache":
				return "spec.cache.image"
			}
			return "spec.apps.image"
		}},
		{"Deployment", re(`^spec\.replicas$`), byComponent("replicas")},
		{"StatefulSet", re(`^spec\.replicas$`), fixed("spec.database.replicasPerShard")},
		{"KafkaTopic", nil, fixed("spec.kafka.topics")},
		{"Kafka", nil, fixed("spec.kafka")},
		{"KafkaNodePool", nil, fixed("spec.kafka")},
	}
}

// specField names the SocialPlatform field a refused child field comes from: by the rules above,
// else by the child's component, else spec itself (the refusal's message then says the rest).
func specField(kind, name, component, childField string) string {
	for _, rule := range fieldRules {
		if rule.kind != "" && rule.kind != kind {
			continue
		}
		if rule.field != nil && !rule.field.MatchString(childField) {
			continue
		}
		if f := rule.spec(name, component); f != "" {
			return f
		}
	}
	switch {
	case isAppComponent[component]:
		return "spec.apps." + component
	case component == "database" || component == "shard-map" || component == "archiver":
		return "spec.database"
	case component == "cache":
		return "spec.cache"
	case component == "cdn":
		return "spec.cdn"
	case component == "monitoring":
		return "spec.observability"
	}
	return "spec"
}
