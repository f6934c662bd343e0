# The identity the edges run as, and exactly what it may do.
#
# What the edge calls (backbone/relay.go):
#   Publish                         pubsub.topics.publish            on each shard topic
#   CreateSubscription              pubsub.subscriptions.create      on the project
#                                   pubsub.topics.attachSubscription on each shard topic
#   StreamingPull, Ack              pubsub.subscriptions.consume     on its subscriptions
#   DeleteSubscription (on stop)    pubsub.subscriptions.delete      on its subscriptions
# Its subscriptions do not exist before it starts, so subscription-level
# grants are impossible and Pub/Sub IAM has no name-prefix conditions: the
# last three are granted on the project. Keep the backbone in a project of its
# own so that this reaches nothing else.
# Not granted: pubsub.topics.create (keep EDGE_CREATE_TOPICS=false; topics
# come from pubsub.tf).

locals {
  edge_member = "serviceAccount:${google_service_account.edge.email}"
  wi_pool     = "${coalesce(var.gke_project_id, var.project_id)}.svc.id.goog"
}

resource "google_service_account" "edge" {
  account_id   = var.service_account_id
  display_name = "feedgate edge"
  description  = "Runs the feedgate edges (GKE Workload Identity): publishes to and subscribes to the shard topics."
}

# Publish to every shard topic.
resource "google_pubsub_topic_iam_member" "edge_publisher" {
  count = var.shards

  topic  = google_pubsub_topic.shard[count.index].name
  role   = "roles/pubsub.publisher"
  member = local.edge_member
}

# roles/pubsub.subscriber on a topic grants pubsub.topics.attachSubscription:
# the edge may attach new subscriptions to the shard topics (and to no other).
resource "google_pubsub_topic_iam_member" "edge_subscriber" {
  count = var.shards

  topic  = google_pubsub_topic.shard[count.index].name
  role   = "roles/pubsub.subscriber"
  member = local.edge_member
}

# "Subscription editor" for its own subscriptions: create, read, consume
# (Seek included), delete. (A deleted custom role's ID cannot be reused for a while; rename
# var.subscription_role_id if you recreate it.)
resource "google_project_iam_custom_role" "edge_subscriptions" {
  role_id     = var.subscription_role_id
  title       = "feedgate edge subscriptions"
  description = "Lets a feedgate edge create, consume and delete its own Pub/Sub subscriptions."
  permissions = [
    "pubsub.subscriptions.create",
    "pubsub.subscriptions.get",
    "pubsub.subscriptions.consume",
    "pubsub.subscriptions.delete",
    # History warming at start: a topic's retention, and its subscriptions
    # (to delete those a previous process with the same EDGE_ID left).
    "pubsub.topics.get",
  ]
}

resource "google_project_iam_member" "edge_subscriptions" {
  project = var.project_id
  role    = google_project_iam_custom_role.edge_subscriptions.name
  member  = local.edge_member
}

# Workload Identity: pods running as Kubernetes service account
# <k8s_namespace>/<k8s_service_account> act as the edge service account. The
# Kubernetes side is the iam.gke.io/gcp-service-account annotation in
# deploy/k8s/base/serviceaccount.yaml.
resource "google_service_account_iam_member" "edge_workload_identity" {
  service_account_id = google_service_account.edge.name
  role               = "roles/iam.workloadIdentityUser"
  member             = "serviceAccount:${local.wi_pool}[${var.k8s_namespace}/${var.k8s_service_account}]"
}
