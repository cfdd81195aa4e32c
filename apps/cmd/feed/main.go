// Command feed runs scalestack's feed service (see apps/service).
package main

import "github.com/scalestack/scalestack/apps/service"

func main() { service.Main(service.Feed) }
