package server

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"

	authenticationv1 "k8s.io/api/authentication/v1"
	authorizationv1 "k8s.io/api/authorization/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
)

// fakeAPIServer answers TokenReviews (token "t-alice" is alice) and SubjectAccessReviews (alice
// may get nodes/stats of node-a), counting the calls.
type fakeAPIServer struct {
	tokenReviews, accessReviews atomic.Int32
	lastSAR                     authorizationv1.SubjectAccessReviewSpec
}

func (f *fakeAPIServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	switch r.URL.Path {
	case "/apis/authentication.k8s.io/v1/tokenreviews":
		f.tokenReviews.Add(1)
		var tr authenticationv1.TokenReview
		_ = json.NewDecoder(r.Body).Decode(&tr)
		if tr.Spec.Token == "t-alice" {
			tr.Status = authenticationv1.TokenReviewStatus{Authenticated: true, User: authenticationv1.UserInfo{
				Username: "alice", UID: "u1", Groups: []string{"devs"}, Extra: map[string]authenticationv1.ExtraValue{"scope": {"a"}}}}
		}
		tr.APIVersion, tr.Kind = "authentication.k8s.io/v1", "TokenReview"
		_ = json.NewEncoder(w).Encode(tr)
	case "/apis/authorization.k8s.io/v1/subjectaccessreviews":
		f.accessReviews.Add(1)
		var sar authorizationv1.SubjectAccessReview
		_ = json.NewDecoder(r.Body).Decode(&sar)
		f.lastSAR = sar.Spec
		ra := sar.Spec.ResourceAttributes
		sar.Status.Allowed = sar.Spec.User == "alice" && ra.Resource == "nodes" && ra.Subresource == "stats" &&
			ra.Name == testNode && ra.Verb == "get" && ra.Version == "v1"
		if !sar.Status.Allowed {
			sar.Status.Reason = "not in the policy"
		}
		sar.APIVersion, sar.Kind = "authorization.k8s.io/v1", "SubjectAccessReview"
		_ = json.NewEncoder(w).Encode(sar)
	default:
		http.NotFound(w, r)
	}
}

func newFakeClient(t *testing.T) (*fakeAPIServer, kubernetes.Interface) {
	t.Helper()
	f := &fakeAPIServer{}
	srv := httptest.NewServer(f)
	t.Cleanup(srv.Close)
	client, err := kubernetes.NewForConfig(&rest.Config{Host: srv.URL, ContentConfig: rest.ContentConfig{ContentType: "application/json"}})
	if err != nil {
		t.Fatal(err)
	}
	return f, client
}

func TestTokenReviewAuthenticator(t *testing.T) {
	f, client := newFakeClient(t)
	a := NewTokenReviewAuthenticator(client.AuthenticationV1(), 0)
	ctx := context.Background()
	for i := 0; i < 3; i++ {
		u, ok, err := a.AuthenticateToken(ctx, "t-alice")
		if err != nil || !ok || u.Name != "alice" || u.UID != "u1" || u.Groups[0] != "devs" || u.Extra["scope"][0] != "a" {
			t.Fatalf("AuthenticateToken = %+v %v %v", u, ok, err)
		}
	}
	if _, ok, err := a.AuthenticateToken(ctx, "t-nobody"); ok || err != nil {
		t.Errorf("unknown token: ok %v err %v", ok, err)
	}
	if _, ok, _ := a.AuthenticateToken(ctx, "t-nobody"); ok {
		t.Error("unknown token accepted from the cache")
	}
	if n := f.tokenReviews.Load(); n != 2 {
		t.Errorf("%d TokenReviews, want 2 (answers are cached)", n)
	}
}

func TestSubjectAccessReviewAuthorizer(t *testing.T) {
	f, client := newFakeClient(t)
	a := NewSubjectAccessReviewAuthorizer(client.AuthorizationV1(), 0, 0)
	ctx := context.Background()
	alice := UserInfo{Name: "alice", UID: "u1", Groups: []string{"devs"}}
	stats := Attributes{User: alice, Verb: "get", APIVersion: "v1", Resource: "nodes", Subresource: "stats", Name: testNode}
	for i := 0; i < 2; i++ {
		if ok, _, err := a.Authorize(ctx, stats); !ok || err != nil {
			t.Fatalf("stats: %v %v", ok, err)
		}
	}
	proxy := stats
	proxy.Subresource = "proxy"
	ok, reason, err := a.Authorize(ctx, proxy)
	if ok || err != nil || reason != "not in the policy" {
		t.Errorf("proxy: %v %q %v", ok, reason, err)
	}
	if n := f.accessReviews.Load(); n != 2 {
		t.Errorf("%d SubjectAccessReviews, want 2 (answers are cached)", n)
	}
	if f.lastSAR.UID != "u1" || f.lastSAR.Groups[0] != "devs" || f.lastSAR.ResourceAttributes.Group != "" {
		t.Errorf("review spec = %+v", f.lastSAR)
	}
}

// TestWebhookAuthEndToEnd serves the kubelet API with the client-go authenticator and
// authorizer against the fake API server.
func TestWebhookAuthEndToEnd(t *testing.T) {
	_, client := newFakeClient(t)
	e := newTestEnv(t, func(o *Options) {
		o.Authenticator = BearerToken{Tokens: NewTokenReviewAuthenticator(client.AuthenticationV1(), 0)}
		o.Authorizer = NewSubjectAccessReviewAuthorizer(client.AuthorizationV1(), 0, 0)
	})
	if code, _, _ := e.do(t, "GET", "/stats/summary", "t-alice"); code != 200 {
		t.Errorf("stats = %d", code)
	}
	if code, _, _ := e.do(t, "GET", "/pods", "t-alice"); code != 403 {
		t.Errorf("pods = %d, want 403", code)
	}
	if code, _, _ := e.do(t, "GET", "/stats/summary", "t-bob"); code != 401 {
		t.Errorf("bad token = %d, want 401", code)
	}
}
