package testutil

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
)

// ServiceAccountKubeconfig installs the operator's RBAC (config/rbac under repo) with kubectl and
// writes, into dir, a kubeconfig that authenticates as the operator's ServiceAccount: an operator
// run with it can do only what its RBAC allows, as it would in a pod.
func ServiceAccountKubeconfig(kubectl, adminKubeconfig, repo, dir string) (string, error) {
	run := func(args ...string) ([]byte, error) {
		out, err := exec.Command(kubectl, append([]string{"--kubeconfig", adminKubeconfig}, args...)...).CombinedOutput()
		if err != nil {
			return nil, fmt.Errorf("kubectl %v: %w\n%s", args, err, out)
		}
		return out, nil
	}
	if _, err := run("create", "namespace", "scalestack-system"); err != nil {
		return "", err
	}
	if _, err := run("apply", "--server-side", "-k", filepath.Join(repo, "config", "rbac")); err != nil {
		return "", err
	}
	token, err := run("create", "token", "scalestack-operator", "-n", "scalestack-system", "--duration=2h")
	if err != nil {
		return "", err
	}
	cfg, err := clientcmd.LoadFromFile(adminKubeconfig)
	if err != nil {
		return "", err
	}
	for name := range cfg.AuthInfos {
		cfg.AuthInfos[name] = &clientcmdapi.AuthInfo{Token: strings.TrimSpace(string(token))}
	}
	path := filepath.Join(dir, "operator.kubeconfig")
	return path, clientcmd.WriteToFile(*cfg, path)
}

// LocalCluster returns a runner of hack/local-cluster.sh's verbs (up, down, ...) for the control
// plane in clusterDir, with the node mode named by node (kwok, real, both; empty: the script's
// default or SCALESTACK_NODE). It returns what the verb prints (up: the kubeconfig's path); the
// script's log goes to stderr.
func LocalCluster(repo, clusterDir, node string) func(verb string) (string, error) {
	return func(verb string) (string, error) {
		cmd := exec.Command(filepath.Join(repo, "hack", "local-cluster.sh"), verb)
		cmd.Env = append(os.Environ(), "SCALESTACK_CLUSTER_DIR="+clusterDir)
		if node != "" {
			cmd.Env = append(cmd.Env, "SCALESTACK_NODE="+node)
		}
		cmd.Stderr = os.Stderr
		out, err := cmd.Output()
		return strings.TrimSpace(string(out)), err
	}
}
