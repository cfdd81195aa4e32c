// Command gateway runs scalestack's gateway service (see apps/service).
package main

import "github.com/scalestack/scalestack/apps/service"

func main() { service.Main(service.Gateway) }
