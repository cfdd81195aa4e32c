// Command post runs scalestack's post service (see apps/service).
package main

import "github.com/scalestack/scalestack/apps/service"

func main() { service.Main(service.Post) }
