// Package telemetry gives every app service the same signals: RED metrics per route (the
// contract the operator's SLO rules read), JSON logs that carry the trace ID, OpenTelemetry
// traces over OTLP tagged with user_id, request_id and shard, and a request ID on every request.
package telemetry

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
	"go.opentelemetry.io/otel/trace"

	"github.com/scalestack/scalestack/pkg/platform"
)

// DurationBuckets are the request-duration histogram's buckets. The SLO's latency threshold (0.3 s)
// must be one of them: the slow-request ratio is read off the 0.3 bucket.
var DurationBuckets = []float64{0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.3, 0.5, 1, 2.5, 5}

// Metrics holds one service's registry and request metrics.
type Metrics struct {
	Registry *prometheus.Registry
	requests *prometheus.CounterVec
	duration *prometheus.HistogramVec
	inflight prometheus.Gauge
}

// NewMetrics returns a registry with the Go and process collectors and the request metrics.
func NewMetrics() *Metrics {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	m := &Metrics{
		Registry: reg,
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "scalestack_http_requests_total", Help: "HTTP requests served, by route, method and status code.",
		}, []string{"route", "method", "code"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "scalestack_http_request_duration_seconds", Help: "HTTP request durations, by route and method.",
			Buckets: DurationBuckets,
		}, []string{"route", "method"}),
		inflight: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "scalestack_http_requests_in_flight", Help: "HTTP requests being served.",
		}),
	}
	reg.MustRegister(m.requests, m.duration, m.inflight)
	return m
}

// Handler serves the registry in the Prometheus text format.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.Registry, promhttp.HandlerOpts{Registry: m.Registry})
}

type ctxKey int

const requestIDKey ctxKey = iota

// RequestID returns the request's ID, "" outside a request.
func RequestID(ctx context.Context) string {
	s, _ := ctx.Value(requestIDKey).(string)
	return s
}

// WithRequestID returns ctx carrying id (outgoing calls forward it).
func WithRequestID(ctx context.Context, id string) context.Context {
	return context.WithValue(ctx, requestIDKey, id)
}

// RequestIDHeader carries the request ID between services.
const RequestIDHeader = "X-Request-Id"

func newRequestID() string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

func validRequestID(s string) bool {
	if s == "" || len(s) > 64 {
		return false
	}
	for _, c := range s {
		ok := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_'
		if !ok {
			return false
		}
	}
	return true
}

type statusWriter struct {
	http.ResponseWriter
	code int
}

func (w *statusWriter) WriteHeader(code int) {
	if w.code == 0 {
		w.code = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if w.code == 0 {
		w.code = http.StatusOK
	}
	return w.ResponseWriter.Write(b)
}

func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// Middleware wraps a service's mux: request ID, a server span, and the RED metrics labelled by
// the mux's route pattern (never the raw path: IDs would explode the series). The span continues
// the caller's trace (W3C traceparent) and is named by method and route; its attributes are
// computed only when it is recorded, so a request whose span is not sampled pays for little more
// than its trace ID. Probes and /metrics get no span.
func (m *Metrics) Middleware(service string, mux *http.ServeMux) http.Handler {
	var tracer cachedTracer
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		id := r.Header.Get(RequestIDHeader)
		if !validRequestID(id) {
			id = newRequestID()
		}
		w.Header().Set(RequestIDHeader, id)
		ctx := WithRequestID(r.Context(), id)
		span := trace.SpanFromContext(ctx)
		if traced(r.URL.Path) {
			ctx = otel.GetTextMapPropagator().Extract(ctx, propagation.HeaderCarrier(r.Header))
			ctx, span = tracer.get().Start(ctx, r.Method, serverKind)
			defer span.End()
		}
		r = r.WithContext(ctx)

		m.inflight.Inc()
		sw := &statusWriter{ResponseWriter: w}
		mux.ServeHTTP(sw, r)
		m.inflight.Dec()
		route := r.Pattern
		if route == "" {
			route = "unmatched"
		}
		code := sw.code
		if code == 0 {
			code = http.StatusOK
		}
		m.requests.WithLabelValues(route, r.Method, codeLabel(code)).Inc()
		m.duration.WithLabelValues(route, r.Method).Observe(time.Since(start).Seconds())
		if span.IsRecording() {
			serverSpanDone(span, service, r, id, code)
		}
	})
}

// The span kinds' start options, made once: an option is an interface value, which allocates.
var (
	serverKind = trace.WithSpanKind(trace.SpanKindServer)
	clientKind = trace.WithSpanKind(trace.SpanKindClient)
)

// codeLabels are the status codes' label values made once; codeLabel formats any other code.
var codeLabels = func() map[int]string {
	m := map[int]string{}
	for code := 100; code < 600; code++ {
		if http.StatusText(code) != "" {
			m[code] = strconv.Itoa(code)
		}
	}
	return m
}()

func codeLabel(code int) string {
	if s, ok := codeLabels[code]; ok {
		return s
	}
	return strconv.Itoa(code)
}

// traced says whether a request path gets a server span: not the probes nor the scrapes.
func traced(path string) bool {
	return path != "/healthz" && path != "/readyz" && path != "/metrics"
}

// serverSpanDone names a recorded server span by its route and gives it the HTTP semantic
// conventions' attributes; a 5xx marks it failed (a 4xx is the client's error, not the server's).
func serverSpanDone(span trace.Span, service string, r *http.Request, requestID string, code int) {
	if r.Pattern != "" {
		// The pattern may carry the method ("GET /v1/users/{id}"); the route is the path part.
		route := r.Pattern
		if i := strings.IndexByte(route, ' '); i >= 0 {
			route = route[i+1:]
		}
		span.SetName(r.Method + " " + route)
		span.SetAttributes(semconv.HTTPRoute(route))
	}
	span.SetAttributes(
		semconv.HTTPRequestMethodKey.String(r.Method),
		semconv.URLPath(r.URL.Path),
		semconv.HTTPResponseStatusCode(code),
		semconv.ServerAddress(service),
		attribute.String("request_id", requestID),
	)
	if code >= http.StatusInternalServerError {
		span.SetStatus(codes.Error, http.StatusText(code))
	}
}

// cachedTracer is the tracer of the global provider, looked up again only when the provider
// changes (SetupTracing runs after the handlers are built, and tests install their own).
type cachedTracer struct {
	v atomic.Pointer[providerTracer]
}

type providerTracer struct {
	provider trace.TracerProvider
	tracer   trace.Tracer
}

const instrumentationScope = "github.com/scalestack/scalestack/apps/telemetry"

func (c *cachedTracer) get() trace.Tracer {
	tp := otel.GetTracerProvider()
	if pt := c.v.Load(); pt != nil && pt.provider == tp {
		return pt.tracer
	}
	pt := &providerTracer{provider: tp, tracer: tp.Tracer(instrumentationScope)}
	c.v.Store(pt)
	return pt.tracer
}

// Annotate tags the current span with the request's user and shard.
func Annotate(ctx context.Context, kv ...attribute.KeyValue) {
	trace.SpanFromContext(ctx).SetAttributes(kv...)
}

// UserID and Shard are the span attributes the apps set.
func UserID(id int64) attribute.KeyValue { return attribute.Int64("user_id", id) }

// Shard is the physical shard a request touched.
func Shard(i int) attribute.KeyValue { return attribute.Int("shard", i) }

// Transport instruments outgoing calls: each gets a client span, and the trace context and the
// request ID travel with it. The span's attributes are computed only when it is recorded; a
// recorded span ends when the response body is read to its end or closed.
func Transport(base http.RoundTripper) http.RoundTripper {
	if base == nil {
		base = http.DefaultTransport
	}
	return &transport{base: base}
}

type transport struct {
	base   http.RoundTripper
	tracer cachedTracer
}

func (t *transport) RoundTrip(r *http.Request) (*http.Response, error) {
	ctx, span := t.tracer.get().Start(r.Context(), r.Method, clientKind)
	// A RoundTripper must not change the caller's request: the headers go on a copy.
	r = r.Clone(ctx)
	otel.GetTextMapPropagator().Inject(ctx, propagation.HeaderCarrier(r.Header))
	if id := RequestID(ctx); id != "" && r.Header.Get(RequestIDHeader) == "" {
		r.Header.Set(RequestIDHeader, id)
	}
	resp, err := t.base.RoundTrip(r)
	if !span.IsRecording() {
		span.End()
		return resp, err
	}
	span.SetAttributes(
		semconv.HTTPRequestMethodKey.String(r.Method),
		semconv.ServerAddress(r.URL.Hostname()),
		// The path, not the full URL: a query may carry a token.
		semconv.URLPath(r.URL.Path),
	)
	if err != nil {
		span.RecordError(err)
		span.SetStatus(codes.Error, err.Error())
		span.End()
		return resp, err
	}
	span.SetAttributes(semconv.HTTPResponseStatusCode(resp.StatusCode))
	if resp.StatusCode >= http.StatusBadRequest {
		span.SetStatus(codes.Error, http.StatusText(resp.StatusCode))
	}
	if resp.Body == nil || resp.Body == http.NoBody {
		span.End()
		return resp, nil
	}
	resp.Body = &spanBody{ReadCloser: resp.Body, span: span}
	return resp, nil
}

// spanBody ends its client span once, at the body's end or when it is closed.
type spanBody struct {
	io.ReadCloser
	span trace.Span
	once sync.Once
}

func (b *spanBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	if err != nil {
		b.once.Do(func() { b.span.End() })
	}
	return n, err
}

func (b *spanBody) Close() error {
	err := b.ReadCloser.Close()
	b.once.Do(func() { b.span.End() })
	return err
}

// SetupTracing installs the global tracer provider: OTLP over HTTP when
// OTEL_EXPORTER_OTLP_ENDPOINT is set (the operator injects it with the sampler settings, which the
// SDK reads from OTEL_TRACES_SAMPLER and OTEL_TRACES_SAMPLER_ARG), else spans are made for the
// trace IDs in logs but exported nowhere. The returned function flushes and stops it.
func SetupTracing(ctx context.Context, service string) (func(context.Context) error, error) {
	otel.SetTextMapPropagator(propagation.NewCompositeTextMapPropagator(propagation.TraceContext{}, propagation.Baggage{}))
	res, err := resource.Merge(resource.Default(), resource.NewWithAttributes(semconv.SchemaURL, semconv.ServiceName(service)))
	if err != nil && !errors.Is(err, resource.ErrSchemaURLConflict) {
		return nil, err
	}
	opts := []sdktrace.TracerProviderOption{sdktrace.WithResource(res)}
	if os.Getenv(platform.EnvTraceDisabled) != "true" && (os.Getenv(platform.EnvTraceEndpoint) != "" || os.Getenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") != "") {
		exp, err := otlptracehttp.New(ctx)
		if err != nil {
			return nil, err
		}
		opts = append(opts, sdktrace.WithBatcher(exp))
	}
	if len(opts) == 1 {
		// Nowhere to export: spans are not recorded, but they still carry trace IDs (into logs
		// and to other services), at a fraction of the cost.
		opts = append(opts, sdktrace.WithSampler(sdktrace.NeverSample()))
	}
	tp := sdktrace.NewTracerProvider(opts...)
	otel.SetTracerProvider(tp)
	return tp.Shutdown, nil
}

// NewLogger returns the service's logger: JSON (or text when format is "text") on stderr, each
// record carrying the service name and, inside a traced request, trace_id and span_id.
func NewLogger(service, format string) *slog.Logger {
	var h slog.Handler
	if format == "text" {
		h = slog.NewTextHandler(os.Stderr, nil)
	} else {
		h = slog.NewJSONHandler(os.Stderr, nil)
	}
	return slog.New(traceHandler{h}).With("service", service)
}

type traceHandler struct{ slog.Handler }

func (h traceHandler) Handle(ctx context.Context, r slog.Record) error {
	if sc := trace.SpanContextFromContext(ctx); sc.IsValid() {
		r.AddAttrs(slog.String("trace_id", sc.TraceID().String()), slog.String("span_id", sc.SpanID().String()))
	}
	if id := RequestID(ctx); id != "" {
		r.AddAttrs(slog.String("request_id", id))
	}
	return h.Handler.Handle(ctx, r)
}

func (h traceHandler) WithAttrs(a []slog.Attr) slog.Handler {
	return traceHandler{h.Handler.WithAttrs(a)}
}
func (h traceHandler) WithGroup(n string) slog.Handler { return traceHandler{h.Handler.WithGroup(n)} }
