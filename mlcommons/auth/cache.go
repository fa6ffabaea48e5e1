package auth

import (
	"container/list"
	"crypto/sha256"
	"sync"
	"time"
)

// cache holds verdicts by credential hash, least recently used first out.
// Expired entries are dropped when met or when they reach the end of the list.
type cache struct {
	mu    sync.Mutex
	max   int
	order *list.List // of *entry, most recently used at the front
	byKey map[[sha256.Size]byte]*list.Element
}

type entry struct {
	key     [sha256.Size]byte
	v       *verdict
	expires time.Time
}

func newCache(max int) *cache {
	return &cache{max: max, order: list.New(), byKey: make(map[[sha256.Size]byte]*list.Element)}
}

func (c *cache) get(k [sha256.Size]byte, now time.Time) (*verdict, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	el, ok := c.byKey[k]
	if !ok {
		return nil, false
	}
	e := el.Value.(*entry)
	if !now.Before(e.expires) {
		c.order.Remove(el)
		delete(c.byKey, k)
		return nil, false
	}
	c.order.MoveToFront(el)
	return e.v, true
}

func (c *cache) put(k [sha256.Size]byte, v *verdict, expires time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if el, ok := c.byKey[k]; ok {
		e := el.Value.(*entry)
		e.v, e.expires = v, expires
		c.order.MoveToFront(el)
		return
	}
	c.byKey[k] = c.order.PushFront(&entry{key: k, v: v, expires: expires})
	for c.order.Len() > c.max {
		oldest := c.order.Back()
		c.order.Remove(oldest)
		delete(c.byKey, oldest.Value.(*entry).key)
	}
}

func (c *cache) len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.order.Len()
}
