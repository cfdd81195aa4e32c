// Command localkafka runs an in-process Kafka (franz-go's kfake, which speaks the real Kafka
// protocol) on loopback for local runs: `make run` points the sample's External Kafka at it.
// No Kafka broker can be installed on these machines; this is the stand-in, and the docs say so.
// On the local node it runs as a pod (image scalestack.local/kfake) listening on 0.0.0.0 and
// advertising the pod's IP.
package main

import (
	"flag"
	"fmt"
	"net"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/twmb/franz-go/pkg/kfake"
)

func main() {
	brokers := flag.Int("brokers", 3, "number of brokers")
	port := flag.Int("port", 0, "port of the first broker (the others follow); 0 picks free ports")
	listen := flag.String("listen", "127.0.0.1", "address the brokers listen on (0.0.0.0 in a pod)")
	advertise := flag.String("advertise", "", "host the brokers advertise to clients (a pod's IP); default: the listen address")
	flag.Parse()
	opts := []kfake.Opt{kfake.NumBrokers(*brokers)}
	if *port > 0 {
		ports := make([]int, *brokers)
		for i := range ports {
			ports[i] = *port + i
		}
		opts = append(opts, kfake.Ports(ports...))
	}
	if *listen != "127.0.0.1" || *advertise != "" {
		opts = append(opts, kfake.ListenFn(listenFn(*listen, *advertise)))
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

// listenFn listens on host instead of kfake's 127.0.0.1 and reports the advertised host as the
// listener's address: kfake advertises its brokers by their listeners' addresses, and clients in
// other pods must reach them by the pod's IP.
func listenFn(host, advertise string) func(network, address string) (net.Listener, error) {
	return func(network, address string) (net.Listener, error) {
		_, port, err := net.SplitHostPort(address)
		if err != nil {
			return nil, err
		}
		ln, err := net.Listen(network, net.JoinHostPort(host, port))
		if err != nil {
			return nil, err
		}
		if advertise == "" {
			return ln, nil
		}
		_, actual, _ := net.SplitHostPort(ln.Addr().String())
		return advertised{Listener: ln, addr: advertisedAddr(net.JoinHostPort(advertise, actual))}, nil
	}
}

type advertised struct {
	net.Listener
	addr net.Addr
}

func (a advertised) Addr() net.Addr { return a.addr }

type advertisedAddr string

func (advertisedAddr) Network() string  { return "tcp" }
func (a advertisedAddr) String() string { return string(a) }
