// Command loadgen drives a running gateway with the Zipf workload of apps/loadgen: it signs up
// -signup users through the API, then runs the mix over them and prints the figures.
//
//	loadgen -target http://127.0.0.1:8080 -signup 200 -duration 30s -concurrency 32
//	loadgen -target http://127.0.0.1:8080 -signup 200 -duration 30s -rate 500   # open loop
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"net/http"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/scalestack/scalestack/apps/loadgen"
	"github.com/scalestack/scalestack/pkg/shard"
)

func main() {
	target := flag.String("target", "http://127.0.0.1:8080", "the gateway's base URL")
	n := flag.Int("signup", 200, "users to sign up before the run (the Zipf population)")
	duration := flag.Duration("duration", 30*time.Second, "how long to run")
	concurrency := flag.Int("concurrency", 32, "workers")
	rate := flag.Float64("rate", 0, "requests per second (0: closed loop, as fast as the workers go)")
	zipfS := flag.Float64("zipf", 1.1, "Zipf exponent (> 1)")
	asJSON := flag.Bool("json", false, "print the result as JSON")
	metrics := flag.String("metrics", "", "comma-separated /metrics URLs of the services, for the cache hit ratio (e.g. http://127.0.0.1:8080/metrics,...)")
	flag.Parse()

	tokens := map[shard.ID]string{}
	var users []shard.ID
	run := time.Now().UnixNano() % 1_000_000
	for i := range *n {
		h := fmt.Sprintf("load_%d_%d", run, i)
		body, _ := json.Marshal(map[string]string{"handle": h, "email": h + "@example.com", "password": "load test password", "display_name": h})
		res, err := http.Post(*target+"/api/signup", "application/json", bytes.NewReader(body))
		if err != nil {
			fmt.Fprintln(os.Stderr, "signup:", err)
			os.Exit(1)
		}
		var tr struct {
			ID    shard.ID `json:"id"`
			Token string   `json:"token"`
		}
		err = json.NewDecoder(res.Body).Decode(&tr)
		_ = res.Body.Close()
		if err != nil || res.StatusCode != http.StatusCreated {
			fmt.Fprintf(os.Stderr, "signup %d: status %d %v\n", i, res.StatusCode, err)
			os.Exit(1)
		}
		users = append(users, tr.ID)
		tokens[tr.ID] = tr.Token
	}
	var murls []string
	if *metrics != "" {
		murls = strings.Split(*metrics, ",")
	}
	h0, m0 := loadgen.CacheCounts(murls)
	var mu sync.Mutex
	res := loadgen.Run(context.Background(), loadgen.Config{
		Target: *target, Users: users, ZipfS: *zipfS, Concurrency: *concurrency, Rate: *rate, Duration: *duration,
		Token: func(id shard.ID) string { mu.Lock(); defer mu.Unlock(); return tokens[id] },
	})
	h1, m1 := loadgen.CacheCounts(murls)
	ratio := loadgen.HitRatio(h0, m0, h1, m1)
	if *asJSON {
		_ = json.NewEncoder(os.Stdout).Encode(map[string]any{"result": res, "cache_hit_ratio": ratio})
		return
	}
	fmt.Println(res)
	if len(murls) > 0 {
		fmt.Printf("    cache hit ratio %.2f%%\n", 100*ratio)
	}
	for _, e := range res.ErrorSamples {
		fmt.Println("  error:", e)
	}
}
