// Keeps kwok in the module graph; test/peers/provision.ts builds it.

//go:build tools

package tools

import _ "sigs.k8s.io/kwok/cmd/kwok"
