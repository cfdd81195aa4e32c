// Command localkafka runs an in-process Kafka (franz-go's kfake, which speaks the real Kafka
// protocol) on loopback for local runs: `make run` points the sample's External Kafka at it.
// No Kafka broker can be installed on these machines; this is the stand-in, and the docs say so.
package main

import (
	"flag"
	"fmt"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/twmb/franz-go/pkg/kfake"
)

func main() {
	brokers := flag.Int("brokers", 3, "number of brokers")
	port := flag.Int("port", 0, "port of the first broker (the others follow); 0 picks free ports")
	flag.Parse()
	opts := []kfake.Opt{kfake.NumBrokers(*brokers)}
	if *port > 0 {
		ports := make([]int, *brokers)
		for i := range ports {
			ports[i] = *port + i
		}
		opts = append(opts, kfake.Ports(ports...))
	}
	cluster, err := kfake.NewCluster(opts...)
	if err != nil {
		fmt.Fprintln(os.Stderr, "starting kfake:", err)
		os.Exit(1)
	}
	defer cluster.Close()
	fmt.Println(strings.Join(cluster.ListenAddrs(), ","))
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGINT, syscall.SIGTERM)
	<-sig
}
