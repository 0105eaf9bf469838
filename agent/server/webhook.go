package server

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"sync"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	authorizationv1 "k8s.io/api/authorization/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	authenticationclient "k8s.io/client-go/kubernetes/typed/authentication/v1"
	authorizationclient "k8s.io/client-go/kubernetes/typed/authorization/v1"
)

// The kubelet's webhook cache defaults (KubeletConfiguration authentication.webhook.cacheTTL,
// authorization.webhook.cacheAuthorizedTTL and cacheUnauthorizedTTL).
const (
	DefaultTokenCacheTTL        = 2 * time.Minute
	DefaultAuthorizedCacheTTL   = 5 * time.Minute
	DefaultUnauthorizedCacheTTL = 30 * time.Second
)

// TokenReviewAuthenticator authenticates bearer tokens with TokenReviews through client-go, as
// the kubelet's webhook authentication. Results (valid and invalid tokens) are kept for TTL, keyed
// by the token's hash; errors are not kept.
type TokenReviewAuthenticator struct {
	client authenticationclient.TokenReviewsGetter
	cache  *ttlCache[tokenResult]
}

type tokenResult struct {
	user *UserInfo
	ok   bool
}

// NewTokenReviewAuthenticator returns the authenticator for a clientset's AuthenticationV1();
// ttl <= 0 means DefaultTokenCacheTTL. It takes the typed client only, so that the binary need
// not link the whole clientset.
func NewTokenReviewAuthenticator(client authenticationclient.TokenReviewsGetter, ttl time.Duration) *TokenReviewAuthenticator {
	if ttl <= 0 {
		ttl = DefaultTokenCacheTTL
	}
	return &TokenReviewAuthenticator{client: client, cache: newTTLCache[tokenResult](ttl, ttl)}
}

// AuthenticateToken implements TokenAuthenticator.
func (a *TokenReviewAuthenticator) AuthenticateToken(ctx context.Context, token string) (*UserInfo, bool, error) {
	sum := sha256.Sum256([]byte(token))
	key := hex.EncodeToString(sum[:])
	if r, ok := a.cache.get(key); ok {
		return r.user, r.ok, nil
	}
	review, err := a.client.TokenReviews().Create(ctx,
		&authenticationv1.TokenReview{Spec: authenticationv1.TokenReviewSpec{Token: token}}, metav1.CreateOptions{})
	if err != nil {
		return nil, false, fmt.Errorf("create TokenReview: %w", err)
	}
	r := tokenResult{ok: review.Status.Authenticated}
	if r.ok {
		u := review.Status.User
		r.user = &UserInfo{Name: u.Username, UID: u.UID, Groups: u.Groups}
		if len(u.Extra) > 0 {
			r.user.Extra = make(map[string][]string, len(u.Extra))
			for k, v := range u.Extra {
				r.user.Extra[k] = v
			}
		}
	}
	a.cache.put(key, r, r.ok)
	return r.user, r.ok, nil
}

// SubjectAccessReviewAuthorizer authorizes with SubjectAccessReviews through client-go, as the
// kubelet's webhook authorization: allowed answers are kept for allowTTL, denied ones for
// denyTTL, errors not at all.
type SubjectAccessReviewAuthorizer struct {
	client authorizationclient.SubjectAccessReviewsGetter
	cache  *ttlCache[sarResult]
}

type sarResult struct {
	allowed bool
	reason  string
}

// NewSubjectAccessReviewAuthorizer returns the authorizer for a clientset's AuthorizationV1(); a
// TTL <= 0 takes the kubelet's default.
func NewSubjectAccessReviewAuthorizer(client authorizationclient.SubjectAccessReviewsGetter, allowTTL, denyTTL time.Duration) *SubjectAccessReviewAuthorizer {
	if allowTTL <= 0 {
		allowTTL = DefaultAuthorizedCacheTTL
	}
	if denyTTL <= 0 {
		denyTTL = DefaultUnauthorizedCacheTTL
	}
	return &SubjectAccessReviewAuthorizer{client: client, cache: newTTLCache[sarResult](allowTTL, denyTTL)}
}

// subjectAccessReview is the review the kubelet's webhook authorizer sends for attributes.
func subjectAccessReview(a Attributes) *authorizationv1.SubjectAccessReview {
	sar := &authorizationv1.SubjectAccessReview{Spec: authorizationv1.SubjectAccessReviewSpec{
		User:   a.User.Name,
		UID:    a.User.UID,
		Groups: a.User.Groups,
		ResourceAttributes: &authorizationv1.ResourceAttributes{
			Verb:        a.Verb,
			Version:     a.APIVersion,
			Resource:    a.Resource,
			Subresource: a.Subresource,
			Name:        a.Name,
		},
	}}
	if len(a.User.Extra) > 0 {
		sar.Spec.Extra = make(map[string]authorizationv1.ExtraValue, len(a.User.Extra))
		for k, v := range a.User.Extra {
			sar.Spec.Extra[k] = v
		}
	}
	return sar
}

// Authorize implements Authorizer. A review neither allowed nor denied is no opinion: not allowed.
func (a *SubjectAccessReviewAuthorizer) Authorize(ctx context.Context, attrs Attributes) (bool, string, error) {
	sar := subjectAccessReview(attrs)
	keyBytes, err := json.Marshal(sar.Spec)
	if err != nil {
		return false, "", fmt.Errorf("key of SubjectAccessReview: %w", err)
	}
	key := string(keyBytes)
	if r, ok := a.cache.get(key); ok {
		return r.allowed, r.reason, nil
	}
	got, err := a.client.SubjectAccessReviews().Create(ctx, sar, metav1.CreateOptions{})
	if err != nil {
		return false, "", fmt.Errorf("create SubjectAccessReview for %s %s nodes/%s %s: %w",
			attrs.User.Name, attrs.Verb, attrs.Subresource, attrs.Name, err)
	}
	r := sarResult{allowed: got.Status.Allowed && !got.Status.Denied, reason: got.Status.Reason}
	if got.Status.EvaluationError != "" && r.reason == "" {
		r.reason = got.Status.EvaluationError
	}
	a.cache.put(key, r, r.allowed)
	return r.allowed, r.reason, nil
}

// ttlCache keeps results for a while: positive ones for posTTL, negative ones for negTTL.
type ttlCache[V any] struct {
	posTTL, negTTL time.Duration
	now            func() time.Time

	mu      sync.Mutex
	entries map[string]ttlEntry[V]
}

type ttlEntry[V any] struct {
	v       V
	expires time.Time
}

// maxCacheEntries bounds the cache: past it, expired entries are dropped, then all if need be,
// so that a flood of distinct tokens cannot grow it without end.
const maxCacheEntries = 4096

func newTTLCache[V any](posTTL, negTTL time.Duration) *ttlCache[V] {
	return &ttlCache[V]{posTTL: posTTL, negTTL: negTTL, now: time.Now, entries: map[string]ttlEntry[V]{}}
}

func (c *ttlCache[V]) get(key string) (V, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.entries[key]
	if !ok || !c.now().Before(e.expires) {
		var zero V
		return zero, false
	}
	return e.v, true
}

func (c *ttlCache[V]) put(key string, v V, positive bool) {
	ttl := c.negTTL
	if positive {
		ttl = c.posTTL
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	now := c.now()
	if len(c.entries) >= maxCacheEntries {
		for k, e := range c.entries {
			if !now.Before(e.expires) {
				delete(c.entries, k)
			}
		}
		if len(c.entries) >= maxCacheEntries {
			clear(c.entries)
		}
	}
	c.entries[key] = ttlEntry[V]{v: v, expires: now.Add(ttl)}
}
