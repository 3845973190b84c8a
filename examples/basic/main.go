// Command basic runs the flow of a Pikku websocket server against Redis and
// prints what it stored: a channel opens with data, its user logs in, it
// subscribes to a topic, and its removal takes every trace with it.
//
//	go run ./examples/basic
//
// It uses REDIS_URL when set; otherwise it starts a redis-server from PATH
// on a free port for the length of the run. Its keys live under their own
// prefix and are removed before it exits.
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/gomodule/redigo/redis"

	"github.com/pikkujs/pikkuredis"
	"github.com/pikkujs/pikkuredis/internal/redisserver"
	"github.com/pikkujs/pikkuredis/internal/redisurl"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "basic:", err)
		os.Exit(1)
	}
}

func run() error {
	url := os.Getenv("REDIS_URL")
	if url == "" {
		srv, err := redisserver.Start()
		if errors.Is(err, redisserver.ErrNotInstalled) {
			return fmt.Errorf("no Redis to talk to: set REDIS_URL=redis://host:port, or install redis-server (Debian/Ubuntu: sudo apt-get install redis-server)")
		}
		if err != nil {
			return err
		}
		defer srv.Stop()
		url = srv.URL
		fmt.Println("started redis-server at", url)
	} else {
		fmt.Println("using REDIS_URL", redisurl.Redact(url))
	}

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	const prefix = "pikkuredis-example"

	// Owned connections: each store dials its own pool from the URL and
	// closes it on Close.
	channels, err := pikkuredis.OpenChannelStore(url, pikkuredis.WithKeyPrefix(prefix))
	if err != nil {
		return err
	}
	defer channels.Close()
	hub, err := pikkuredis.OpenEventHubStore(url, pikkuredis.WithKeyPrefix(prefix))
	if err != nil {
		return err
	}
	defer hub.Close()
	if err := channels.Init(ctx); err != nil {
		return err
	}
	if err := hub.Init(ctx); err != nil {
		return err
	}

	// A channel opens, its user logs in, it joins a topic.
	if err := channels.AddChannel(ctx, pikkuredis.Channel{
		ChannelID:   "ch-1",
		ChannelName: "chat",
		OpeningData: map[string]any{"room": "lobby", "client": "<web>"},
	}); err != nil {
		return err
	}
	if err := channels.SetUserSession(ctx, "ch-1", map[string]any{"userId": "u-42", "roles": []string{"member"}}); err != nil {
		return err
	}
	if _, err := hub.Subscribe(ctx, "room:lobby", "ch-1"); err != nil {
		return err
	}

	ch, err := channels.GetChannelAndSession(ctx, "ch-1")
	if err != nil {
		return err
	}
	fmt.Printf("channel %s (%s) opened %s\n  openingData %s\n  session     %s\n",
		ch.ChannelID, ch.ChannelName, ch.CreatedAt.Format(time.RFC3339Nano), ch.OpeningData, ch.Session)
	ids, err := hub.GetChannelIDsForTopic(ctx, "room:lobby")
	if err != nil {
		return err
	}
	fmt.Println("topic room:lobby has", ids)

	// What is in Redis, read with plain commands: the layout @pikku/redis uses.
	raw, err := redis.DialURLContext(ctx, url)
	if err != nil {
		return err
	}
	defer raw.Close()
	fields, err := redis.StringMap(raw.Do("HGETALL", prefix+":channel:ch-1"))
	if err != nil {
		return err
	}
	fmt.Println("HGETALL", prefix+":channel:ch-1")
	for _, f := range []string{"channelId", "channelName", "openingData", "userSession", "createdAt"} {
		fmt.Printf("  %-11s %s\n", f, fields[f])
	}
	subs, err := redis.Strings(raw.Do("SMEMBERS", prefix+":subs:ch-1"))
	if err != nil {
		return err
	}
	fmt.Println("SMEMBERS", prefix+":subs:ch-1", subs)

	// The channel closes: hash, subscriptions and topic membership go at once.
	if err := channels.RemoveChannels(ctx, []string{"ch-1"}); err != nil {
		return err
	}
	ids, err = hub.GetChannelIDsForTopic(ctx, "room:lobby")
	if err != nil {
		return err
	}
	_, err = channels.GetChannelAndSession(ctx, "ch-1")
	fmt.Println("after RemoveChannels: topic room:lobby has", ids, "and get says:", err)
	return nil
}
