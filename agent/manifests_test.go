package agent

import (
	"strings"
	"testing"
)

func TestDecodePods(t *testing.T) {
	cases := []struct {
		name    string
		in      string
		want    []string // pod names
		wantErr string
	}{
		{"yaml", "apiVersion: v1\nkind: Pod\nmetadata:\n  name: a\nspec:\n  containers:\n  - name: c\n    image: busybox\n", []string{"a-node"}, ""},
		{"json", `{"apiVersion":"v1","kind":"Pod","metadata":{"name":"j"},"spec":{"containers":[{"name":"c","image":"busybox"}]}}`, []string{"j-node"}, ""},
		{"multi-document with comments", "# leading\n---\napiVersion: v1\nkind: Pod\nmetadata: {name: a}\nspec: {containers: [{name: c, image: x}]}\n---\n# only a comment\n---\napiVersion: v1\nkind: Pod\nmetadata: {name: b}\nspec: {containers: [{name: c, image: x}]}\n", []string{"a-node", "b-node"}, ""},
		{"unknown field", "apiVersion: v1\nkind: Pod\nmetadata: {name: a}\nspec: {containers: [{name: c, image: x, bogusField: 1}]}\n", nil, "bogusField"},
		{"not a pod", "apiVersion: v1\nkind: Namespace\nmetadata: {name: a}\n", nil, "only v1 Pod"},
		{"malformed", "apiVersion: v1\nkind: Pod\nmetadata: [\n", nil, "document 0"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			pods, err := decodePods([]byte(tc.in), "/m/f.yaml", "node")
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want one containing %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			var names []string
			for _, p := range pods {
				names = append(names, p.Name)
				if p.Namespace != "default" || p.Spec.NodeName != "node" || len(p.UID) != 32 {
					t.Errorf("pod %s: namespace %q node %q uid %q", p.Name, p.Namespace, p.Spec.NodeName, p.UID)
				}
			}
			if strings.Join(names, ",") != strings.Join(tc.want, ",") {
				t.Fatalf("pods %v, want %v", names, tc.want)
			}
		})
	}
}

func TestStaticPodUIDDependsOnContentNodeAndSource(t *testing.T) {
	doc := "apiVersion: v1\nkind: Pod\nmetadata: {name: a}\nspec: {containers: [{name: c, image: x}]}\n"
	uid := func(doc, src, node string) string {
		pods, err := decodePods([]byte(doc), src, node)
		if err != nil {
			t.Fatal(err)
		}
		return string(pods[0].UID)
	}
	base := uid(doc, "/m/a.yaml", "n")
	if uid(doc, "/m/a.yaml", "n") != base {
		t.Error("same manifest gives a different UID")
	}
	for name, other := range map[string]string{
		"content": uid(strings.Replace(doc, "image: x", "image: y", 1), "/m/a.yaml", "n"),
		"source":  uid(doc, "/m/b.yaml", "n"),
		"node":    uid(doc, "/m/a.yaml", "m"),
	} {
		if other == base {
			t.Errorf("changing the %s keeps the UID", name)
		}
	}
}
