package pikkuredis_test

import (
	"context"
	"log"
	"time"

	"github.com/pikkujs/pikkuredis"
)

// A store behind Redis Sentinel: the sentinels' addresses and the
// master's name in the URL, Redis's password in the user info and the
// sentinels' own in the query. Every dial asks the sentinels for the
// master, so after a failover the same store writes to the new one.
func ExampleOpenChannelStore_sentinel() {
	cs, err := pikkuredis.OpenChannelStore(
		"redis+sentinel://app:redis-pass@10.0.0.1:26379,10.0.0.2:26379,10.0.0.3:26379/mymaster?sentinel_password=sentinel-pass")
	if err != nil {
		log.Fatal(err) // a malformed URL: nothing was dialled
	}
	defer cs.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if err := cs.Init(ctx); err != nil {
		log.Printf("redis not reachable yet: %v", err) // passwords are never shown
	}
}
