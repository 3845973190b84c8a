package pikkuredis_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log"
	"time"

	"github.com/gomodule/redigo/redis"

	"github.com/pikkujs/pikkuredis"
)

// examplePrefix keeps each example's keys apart from everything else on the
// test server; a real program uses the default "pikku" or its own prefix.
func examplePrefix() string {
	b := make([]byte, 6)
	rand.Read(b)
	return "pikkuredis-example-" + hex.EncodeToString(b)
}

// The flow of a websocket server: a channel opens, its user logs in, it
// subscribes to a topic, the server fans out to the topic, the channel
// closes and every trace of it goes in one call.
func Example() {
	ctx := context.Background()
	prefix := examplePrefix()

	// redisURL is e.g. "redis://localhost:6379". Each store owns its pool.
	channels, err := pikkuredis.OpenChannelStore(redisURL, pikkuredis.WithKeyPrefix(prefix))
	if err != nil {
		log.Fatal(err)
	}
	defer channels.Close()
	hub, err := pikkuredis.OpenEventHubStore(redisURL, pikkuredis.WithKeyPrefix(prefix))
	if err != nil {
		log.Fatal(err)
	}
	defer hub.Close()
	if err := channels.Init(ctx); err != nil { // PING and load the scripts
		log.Fatal(err)
	}

	err = channels.AddChannel(ctx, pikkuredis.Channel{
		ChannelID:   "ch-1",
		ChannelName: "chat",
		OpeningData: map[string]string{"room": "lobby"},
	})
	if err != nil {
		log.Fatal(err)
	}
	if err := channels.SetUserSession(ctx, "ch-1", map[string]string{"userId": "u-42"}); err != nil {
		log.Fatal(err)
	}
	if _, err := hub.Subscribe(ctx, "room:lobby", "ch-1"); err != nil {
		log.Fatal(err)
	}

	ch, err := channels.GetChannelAndSession(ctx, "ch-1")
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(ch.ChannelName, string(ch.OpeningData), string(ch.Session))
	ids, _ := hub.GetChannelIDsForTopic(ctx, "room:lobby")
	fmt.Println("subscribers:", ids)

	// On disconnect: the hash, the subscriptions and the topic membership go together.
	if err := channels.RemoveChannels(ctx, []string{"ch-1"}); err != nil {
		log.Fatal(err)
	}
	ids, _ = hub.GetChannelIDsForTopic(ctx, "room:lobby")
	fmt.Println("subscribers after close:", ids)
	// Output:
	// chat {"room":"lobby"} {"userId":"u-42"}
	// subscribers: [ch-1]
	// subscribers after close: []
}

// Stores over a pool the application already has. Closing the stores
// leaves the pool open.
func ExampleNewEventHubStore() {
	ctx := context.Background()
	pool := &redis.Pool{
		MaxActive: 32, MaxIdle: 32, Wait: true,
		DialContext: func(ctx context.Context) (redis.Conn, error) {
			return redis.DialURLContext(ctx, redisURL)
		},
	}
	defer pool.Close()

	hub := pikkuredis.NewEventHubStore(pool, pikkuredis.WithKeyPrefix(examplePrefix()))
	defer hub.Close()

	first, _ := hub.Subscribe(ctx, "news", "ch-1")
	again, _ := hub.Subscribe(ctx, "news", "ch-1")
	fmt.Println("subscribe:", first, again)
	was, _ := hub.Unsubscribe(ctx, "news", "ch-1")
	wasAgain, _ := hub.Unsubscribe(ctx, "news", "ch-1")
	fmt.Println("unsubscribe:", was, wasAgain)
	// Output:
	// subscribe: true true
	// unsubscribe: true false
}

// A missing channel is ErrChannelNotFound, and the error names it.
func ExampleChannelStore_GetChannelAndSession_notFound() {
	channels, _ := pikkuredis.OpenChannelStore(redisURL, pikkuredis.WithKeyPrefix(examplePrefix()))
	defer channels.Close()

	_, err := channels.GetChannelAndSession(context.Background(), "gone")
	fmt.Println(errors.Is(err, pikkuredis.ErrChannelNotFound))
	fmt.Println(err)
	// Output:
	// true
	// pikkuredis: channel not found: gone
}

type chatOpening struct {
	Room string `json:"room"`
}

type chatSession struct {
	UserID string `json:"userId"`
}

// A typed view: opening data and sessions go in and come out as Go types.
func ExampleNewTyped() {
	ctx := context.Background()
	store, _ := pikkuredis.OpenChannelStore(redisURL, pikkuredis.WithKeyPrefix(examplePrefix()))
	defer store.Close()
	chats := pikkuredis.NewTyped[chatOpening, chatSession](store)

	_ = chats.AddChannel(ctx, "ch-1", "chat", chatOpening{Room: "lobby"})
	_ = chats.SetUserSession(ctx, "ch-1", chatSession{UserID: "u-42"})
	ch, err := chats.GetChannelAndSession(ctx, "ch-1")
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(ch.OpeningData.Room, ch.Session.UserID, ch.HasSession, time.Since(ch.CreatedAt) < time.Minute)
	_ = store.RemoveChannels(ctx, []string{"ch-1"})
	// Output:
	// lobby u-42 true true
}

// Today's Pikku channel API, typed: the channel with its user id, and
// its state as a Go value.
func ExampleNewTypedState() {
	ctx := context.Background()
	store, _ := pikkuredis.OpenChannelStore(redisURL, pikkuredis.WithKeyPrefix(examplePrefix()))
	defer store.Close()
	type chatState struct {
		Typing bool `json:"typing"`
	}
	chats := pikkuredis.NewTyped[chatOpening, chatSession](store)
	states := pikkuredis.NewTypedState[chatState](store)

	_ = chats.AddChannel(ctx, "ch-1", "chat", chatOpening{Room: "lobby"})
	_ = chats.SetPikkuUserID(ctx, "ch-1", "u-42")
	_ = states.Set(ctx, "ch-1", chatState{Typing: true})
	ch, err := chats.GetChannel(ctx, "ch-1")
	if err != nil {
		log.Fatal(err)
	}
	st, ok, err := states.Get(ctx, "ch-1")
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(ch.OpeningData.Room, ch.PikkuUserID, ok, st.Typing)
	_ = store.RemoveChannels(ctx, []string{"ch-1"})
	// Output:
	// lobby u-42 true true
}

// Today's Pikku channel API (@pikku/redis 0.12.18): a user id and a state
// per channel, in the same hash as the rest of the channel.
func ExampleChannelStore_GetChannel() {
	ctx := context.Background()
	channels, _ := pikkuredis.OpenChannelStore(redisURL, pikkuredis.WithKeyPrefix(examplePrefix()))
	defer channels.Close()

	_ = channels.AddChannel(ctx, pikkuredis.Channel{ChannelID: "ch-1", ChannelName: "chat"})
	_ = channels.SetPikkuUserID(ctx, "ch-1", "u-42")
	_ = channels.SetState(ctx, "ch-1", map[string]int{"step": 2})

	info, err := channels.GetChannel(ctx, "ch-1")
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(info.ChannelName, string(info.OpeningData), info.PikkuUserID)
	state, ok, _ := channels.GetState(ctx, "ch-1")
	fmt.Println(string(state), ok)

	_ = channels.ClearState(ctx, "ch-1")
	_, ok, _ = channels.GetState(ctx, "ch-1")
	fmt.Println("after ClearState:", ok)

	err = channels.SetState(ctx, "closed-socket", "late write")
	fmt.Println(err)
	_ = channels.RemoveChannels(ctx, []string{"ch-1"})
	// Output:
	// chat {} u-42
	// {"step":2} true
	// after ClearState: false
	// pikkuredis: channel not found: closed-socket
}

// Today's Pikku keeps the user's session apart from the channel, one key
// per Pikku user, as @pikku/redis 0.12.18's RedisSessionStore does: Go and
// TypeScript servers on one Redis and prefix share them.
func ExampleSessionStore() {
	ctx := context.Background()
	sessions, err := pikkuredis.OpenSessionStore(redisURL,
		pikkuredis.WithKeyPrefix(examplePrefix()),
		pikkuredis.WithSessionTTL(24*time.Hour)) // SET ... EX 86400
	if err != nil {
		log.Fatal(err)
	}
	defer sessions.Close()

	_ = sessions.Set(ctx, "u-42", map[string]any{"userId": "u-42", "roles": []string{"admin"}})
	session, ok, err := sessions.Get(ctx, "u-42")
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(string(session), ok)

	_ = sessions.Clear(ctx, "u-42")
	_, ok, _ = sessions.Get(ctx, "u-42")
	fmt.Println("after Clear:", ok)
	// Output:
	// {"roles":["admin"],"userId":"u-42"} true
	// after Clear: false
}

// A channel and the session of the user it belongs to, in one round trip
// and one atomic step: what a websocket handler needs on every message.
func ExampleChannelStore_GetChannelWithSession() {
	ctx := context.Background()
	prefix := examplePrefix() // the same prefix for both stores
	channels, _ := pikkuredis.OpenChannelStore(redisURL, pikkuredis.WithKeyPrefix(prefix))
	defer channels.Close()
	sessions, _ := pikkuredis.OpenSessionStore(redisURL, pikkuredis.WithKeyPrefix(prefix))
	defer sessions.Close()

	_ = channels.AddChannel(ctx, pikkuredis.Channel{ChannelID: "ch-1", ChannelName: "chat"})
	_ = channels.SetPikkuUserID(ctx, "ch-1", "u-42")
	_ = sessions.Set(ctx, "u-42", map[string]string{"userId": "u-42"})

	ch, err := channels.GetChannelWithSession(ctx, "ch-1")
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(ch.ChannelName, ch.PikkuUserID, string(ch.Session), ch.HasSession)

	_ = sessions.Clear(ctx, "u-42") // logged out: the channel stays
	ch, _ = channels.GetChannelWithSession(ctx, "ch-1")
	fmt.Println(ch.PikkuUserID, ch.Session == nil, ch.HasSession)
	_ = channels.RemoveChannels(ctx, []string{"ch-1"})
	// Output:
	// chat u-42 {"userId":"u-42"} true
	// u-42 true false
}

// Sessions decoded into a Go type, and a channel read with its user's
// session decoded too.
func ExampleNewTypedSessionStore() {
	ctx := context.Background()
	prefix := examplePrefix()
	store, _ := pikkuredis.OpenChannelStore(redisURL, pikkuredis.WithKeyPrefix(prefix))
	defer store.Close()
	raw, _ := pikkuredis.OpenSessionStore(redisURL, pikkuredis.WithKeyPrefix(prefix))
	defer raw.Close()
	sessions := pikkuredis.NewTypedSessionStore[chatSession](raw)
	chats := pikkuredis.NewTyped[chatOpening, chatSession](store)

	_ = sessions.Set(ctx, "u-42", chatSession{UserID: "u-42"})
	s, ok, err := sessions.Get(ctx, "u-42")
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(s.UserID, ok)

	_ = chats.AddChannel(ctx, "ch-1", "chat", chatOpening{Room: "lobby"})
	_ = store.SetPikkuUserID(ctx, "ch-1", "u-42")
	ch, err := chats.GetChannelWithSession(ctx, "ch-1")
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(ch.OpeningData.Room, ch.PikkuUserID, ch.Session.UserID, ch.HasSession)
	_ = store.RemoveChannels(ctx, []string{"ch-1"})
	_ = sessions.Clear(ctx, "u-42")
	// Output:
	// u-42 true
	// lobby u-42 u-42 true
}

// Fanning out to a large topic without holding every id in memory: the ids
// come from Redis a page at a time.
func ExampleEventHubStore_ScanChannelIDsForTopic() {
	ctx := context.Background()
	hub, err := pikkuredis.OpenEventHubStore(redisURL, pikkuredis.WithKeyPrefix(examplePrefix()))
	if err != nil {
		log.Fatal(err)
	}
	defer hub.Close()
	for _, id := range []string{"ch-1", "ch-2", "ch-3"} {
		if _, err := hub.Subscribe(ctx, "news", id); err != nil {
			log.Fatal(err)
		}
	}

	sent := 0
	for id, err := range hub.ScanChannelIDsForTopic(ctx, "news") {
		if err != nil {
			log.Fatal(err)
		}
		_ = id // send the message to the socket of channel id
		sent++
	}
	fmt.Println("sent to", sent, "channels")
	// Output: sent to 3 channels
}

// Leases for crashed servers: each server touches its live channels well
// within the TTL, and a sweeper removes the channels of a server that
// stopped doing so (it crashed), with all their subscriptions.
func ExampleWithChannelTTL() {
	ctx := context.Background()
	prefix := examplePrefix()
	channels, err := pikkuredis.OpenChannelStore(redisURL,
		pikkuredis.WithKeyPrefix(prefix), pikkuredis.WithChannelTTL(400*time.Millisecond))
	if err != nil {
		log.Fatal(err)
	}
	defer channels.Close()

	for _, id := range []string{"live-1", "crashed-1"} {
		if err := channels.AddChannel(ctx, pikkuredis.Channel{ChannelID: id, ChannelName: "chat"}); err != nil {
			log.Fatal(err)
		}
	}
	// A real server runs these in the background, for example:
	//   go channels.SweepExpiredEvery(ctx, 10*time.Second, nil)
	// and touches its live sockets' channels every TTL/3.
	for i := 0; i < 6; i++ {
		time.Sleep(100 * time.Millisecond)
		gone, err := channels.TouchChannels(ctx, "live-1") // crashed-1's server is gone
		if err != nil {
			log.Fatal(err)
		}
		if len(gone) > 0 {
			fmt.Println("close the sockets of", gone)
		}
	}
	removed, err := channels.SweepExpired(ctx)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("swept:", removed)
	_, err = channels.GetChannelAndSession(ctx, "crashed-1")
	fmt.Println("crashed-1 not found:", errors.Is(err, pikkuredis.ErrChannelNotFound))
	_, err = channels.GetChannelAndSession(ctx, "live-1")
	fmt.Println("live-1 error:", err)
	channels.RemoveChannels(ctx, []string{"live-1"})
	// Output:
	// swept: 1
	// crashed-1 not found: true
	// live-1 error: <nil>
}

// Repair removes subscriptions whose channel is gone, such as the ids
// @pikku/redis's removeChannels leaves in topic sets. Run it as a
// maintenance task, a page of sets per call, first as a dry run.
func ExampleEventHubStore_Repair() {
	ctx := context.Background()
	prefix := examplePrefix()
	hub, err := pikkuredis.OpenEventHubStore(redisURL, pikkuredis.WithKeyPrefix(prefix))
	if err != nil {
		log.Fatal(err)
	}
	defer hub.Close()
	// A subscription of a channel that no ChannelStore holds (as a
	// TypeScript removeChannels would leave it).
	if _, err := hub.Subscribe(ctx, "news", "gone-1"); err != nil {
		log.Fatal(err)
	}

	for _, dry := range []bool{true, false} {
		opts := pikkuredis.RepairOptions{ChannelsKeptByChannelStore: true, DryRun: dry}
		for {
			report, err := hub.Repair(ctx, opts)
			if err != nil {
				log.Fatal(err)
			}
			for _, o := range report.Orphans {
				fmt.Printf("dry run %v: orphan %s in %s\n", dry, o.ChannelID, o.Topic)
			}
			if report.Done {
				break
			}
			opts.Cursor = report.Cursor
		}
	}
	ids, _ := hub.GetChannelIDsForTopic(ctx, "news")
	fmt.Println("news:", ids)
	// Output:
	// dry run true: orphan gone-1 in news
	// dry run true: orphan gone-1 in news
	// dry run false: orphan gone-1 in news
	// news: []
}
