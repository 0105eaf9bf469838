package netns

import (
	"encoding/json"
	"strings"
	"testing"
)

func TestConflist(t *testing.T) {
	good := NetworkConfig{Name: "podagent0", Bridge: "podagent0", Subnet: "10.244.0.0/16", IPAMDataDir: "/var/lib/podagent/ipam"}
	raw, err := conflist(good)
	if err != nil {
		t.Fatal(err)
	}
	var got struct {
		Name    string `json:"name"`
		Plugins []struct {
			Type   string `json:"type"`
			Bridge string `json:"bridge"`
			IPMasq bool   `json:"ipMasq"`
			IPAM   struct {
				DataDir string                `json:"dataDir"`
				Ranges  [][]map[string]string `json:"ranges"`
			} `json:"ipam"`
		} `json:"plugins"`
	}
	if err := json.Unmarshal(raw, &got); err != nil {
		t.Fatal(err)
	}
	br := got.Plugins[0]
	if got.Name != "podagent0" || br.Type != "bridge" || br.Bridge != "podagent0" || br.IPMasq ||
		br.IPAM.DataDir != good.IPAMDataDir || br.IPAM.Ranges[0][0]["subnet"] != "10.244.0.0/16" || got.Plugins[1].Type != "portmap" {
		t.Fatalf("conflist %s", raw)
	}

	for name, tc := range map[string]struct {
		mutate func(*NetworkConfig)
		want   string
	}{
		"bad CIDR":         {func(c *NetworkConfig) { c.Subnet = "10.0.0.0/33" }, "pod CIDR"},
		"long bridge":      {func(c *NetworkConfig) { c.Bridge = "a-very-long-bridge-name" }, "longer than 15"},
		"missing IPAM dir": {func(c *NetworkConfig) { c.IPAMDataDir = "" }, "required"},
	} {
		t.Run(name, func(t *testing.T) {
			c := good
			tc.mutate(&c)
			if _, err := conflist(c); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err %v, want %q", err, tc.want)
			}
		})
	}
}
