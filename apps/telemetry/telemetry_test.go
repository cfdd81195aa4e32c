package telemetry

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
)

// recordAll installs a global tracer provider that samples every span into the returned recorder,
// and restores the previous provider and propagator when the test ends.
func recordAll(t *testing.T, sampler sdktrace.Sampler) *tracetest.SpanRecorder {
	t.Helper()
	prevTP, prevProp := otel.GetTracerProvider(), otel.GetTextMapPropagator()
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSampler(sampler), sdktrace.WithSpanProcessor(rec))
	otel.SetTracerProvider(tp)
	otel.SetTextMapPropagator(propagation.TraceContext{})
	t.Cleanup(func() {
		_ = tp.Shutdown(t.Context())
		otel.SetTracerProvider(prevTP)
		otel.SetTextMapPropagator(prevProp)
	})
	return rec
}

func attrs(s sdktrace.ReadOnlySpan) map[attribute.Key]attribute.Value {
	m := map[attribute.Key]attribute.Value{}
	for _, kv := range s.Attributes() {
		m[kv.Key] = kv.Value
	}
	return m
}

func TestServerSpanContinuesTheCallersTraceAndIsNamedByRoute(t *testing.T) {
	rec := recordAll(t, sdktrace.ParentBased(sdktrace.AlwaysSample()))
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v1/users/{id}", func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "no such user", http.StatusNotFound)
	})
	mux.HandleFunc("POST /v1/posts", func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "shard down", http.StatusServiceUnavailable)
	})
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {})
	h := NewMetrics().Middleware("user", mux)

	const parent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
	req := httptest.NewRequest(http.MethodGet, "/v1/users/42", nil)
	req.Header.Set("traceparent", parent)
	req.Header.Set(RequestIDHeader, "req-1")
	h.ServeHTTP(httptest.NewRecorder(), req)
	h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest(http.MethodPost, "/v1/posts", nil))
	h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest(http.MethodGet, "/healthz", nil))

	spans := rec.Ended()
	if len(spans) != 2 {
		t.Fatalf("got %d spans, want 2 (none for /healthz)", len(spans))
	}
	get, post := spans[0], spans[1]
	if get.Name() != "GET /v1/users/{id}" || get.SpanKind() != trace.SpanKindServer {
		t.Errorf("span %q of kind %v, want %q of kind server", get.Name(), get.SpanKind(), "GET /v1/users/{id}")
	}
	if got := get.Parent(); got.TraceID().String() != "4bf92f3577b34da6a3ce929d0e0e4736" || got.SpanID().String() != "00f067aa0ba902b7" || !got.IsRemote() {
		t.Errorf("parent %v, want the caller's span 00f067aa0ba902b7 of trace 4bf92f35…", got)
	}
	a := attrs(get)
	if a["http.route"].AsString() != "/v1/users/{id}" || a["http.response.status_code"].AsInt64() != 404 ||
		a["url.path"].AsString() != "/v1/users/42" || a["request_id"].AsString() != "req-1" || a["http.request.method"].AsString() != "GET" {
		t.Errorf("attributes %v", a)
	}
	if get.Status().Code != codes.Unset {
		t.Errorf("a 404 is the client's error, not the server's: status %v", get.Status())
	}
	if post.Name() != "POST /v1/posts" || post.Status().Code != codes.Error || post.Parent().IsValid() {
		t.Errorf("the 503 span: name %q, status %v, parent %v; want a failed root span", post.Name(), post.Status(), post.Parent())
	}
}

func TestUnsampledRequestsStillCarryTheirTraceAndRequestIDDownstream(t *testing.T) {
	rec := recordAll(t, sdktrace.NeverSample())
	var seen http.Header
	downstream := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		seen = r.Header.Clone()
		_, _ = io.WriteString(w, "ok")
	}))
	defer downstream.Close()
	client := &http.Client{Transport: Transport(nil)}

	var traceID trace.TraceID
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v1/feed", func(w http.ResponseWriter, r *http.Request) {
		sc := trace.SpanContextFromContext(r.Context())
		if !sc.IsValid() || sc.IsSampled() {
			t.Errorf("the handler's span context %v: want a valid, unsampled one (its trace ID goes into the logs)", sc)
		}
		traceID = sc.TraceID()
		out, _ := http.NewRequestWithContext(r.Context(), http.MethodGet, downstream.URL, nil)
		resp, err := client.Do(out)
		if err != nil {
			t.Error(err)
			return
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		_ = resp.Body.Close()
		if out.Header.Get("traceparent") != "" {
			t.Error("the transport changed the caller's request")
		}
	})
	req := httptest.NewRequest(http.MethodGet, "/v1/feed", nil)
	req.Header.Set(RequestIDHeader, "req-2")
	NewMetrics().Middleware("feed", mux).ServeHTTP(httptest.NewRecorder(), req)

	sc := trace.SpanContextFromContext(otel.GetTextMapPropagator().Extract(t.Context(), propagation.HeaderCarrier(seen)))
	if !sc.IsValid() || sc.TraceID() != traceID || sc.IsSampled() {
		t.Errorf("downstream got traceparent %q (trace %v): want trace %v, not sampled", seen.Get("traceparent"), sc.TraceID(), traceID)
	}
	if seen.Get(RequestIDHeader) != "req-2" {
		t.Errorf("downstream got request ID %q, want req-2", seen.Get(RequestIDHeader))
	}
	if n := len(rec.Started()); n != 0 {
		t.Errorf("%d spans recorded with a sampler that samples none", n)
	}
}

func TestClientSpanEndsWithTheResponseBody(t *testing.T) {
	rec := recordAll(t, sdktrace.AlwaysSample())
	var seen http.Header
	downstream := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		seen = r.Header.Clone()
		w.WriteHeader(http.StatusBadGateway)
		_, _ = io.WriteString(w, "upstream failed")
	}))
	defer downstream.Close()
	client := &http.Client{Transport: Transport(nil)}

	resp, err := client.Get(downstream.URL + "/v1/users/7?token=secret")
	if err != nil {
		t.Fatal(err)
	}
	if n := len(rec.Ended()); n != 0 {
		t.Fatalf("%d spans ended before the body was read", n)
	}
	if _, err := io.ReadAll(resp.Body); err != nil {
		t.Fatal(err)
	}
	_ = resp.Body.Close()
	spans := rec.Ended()
	if len(spans) != 1 {
		t.Fatalf("got %d spans after the body was read and closed, want exactly 1", len(spans))
	}
	s := spans[0]
	if s.SpanKind() != trace.SpanKindClient || s.Status().Code != codes.Error || attrs(s)["http.response.status_code"].AsInt64() != http.StatusBadGateway {
		t.Errorf("client span: kind %v, status %v, attributes %v", s.SpanKind(), s.Status(), attrs(s))
	}
	for k, v := range attrs(s) {
		if strings.Contains(v.String(), "secret") {
			t.Errorf("attribute %s = %q carries the query's token", k, v.String())
		}
	}
	sc := trace.SpanContextFromContext(otel.GetTextMapPropagator().Extract(t.Context(), propagation.HeaderCarrier(seen)))
	if sc.SpanID() != s.SpanContext().SpanID() {
		t.Errorf("downstream's parent span %v, want the client span %v", sc.SpanID(), s.SpanContext().SpanID())
	}
}
