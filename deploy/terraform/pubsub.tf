# The backbone: a fixed set of shard topics shared by every edge in every
# region. A channel maps to shard fnv32a(channel) % shards (backbone/relay.go).
#
# Subscriptions are NOT managed here: each edge creates its own ordered
# subscription per shard (<prefix>-<k>-<EDGE_ID>, 24h expiration policy) when
# it starts and deletes them when it stops gracefully.
resource "google_pubsub_topic" "shard" {
  count = var.shards

  name                       = "${var.topic_prefix}-${count.index}"
  message_retention_duration = var.message_retention_duration

  labels = merge({ app = "feedgate", component = "backbone" }, var.labels)
}
