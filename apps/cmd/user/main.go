// Command user runs scalestack's user service (see apps/service).
package main

import "github.com/scalestack/scalestack/apps/service"

func main() { service.Main(service.User) }
