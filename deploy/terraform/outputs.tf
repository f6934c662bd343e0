output "topics" {
  description = "Shard topic IDs (projects/<project>/topics/<prefix>-<k>)."
  value       = google_pubsub_topic.shard[*].id
}

output "edge_service_account" {
  description = "Email of the edges' Google service account: the value of the iam.gke.io/gcp-service-account annotation in deploy/k8s/base/serviceaccount.yaml."
  value       = google_service_account.edge.email
}

output "edge_config" {
  description = "The EDGE_* values every edge must use with these topics."
  value = {
    EDGE_PUBSUB_PROJECT = var.project_id
    EDGE_PUBSUB_PREFIX  = var.topic_prefix
    EDGE_PUBSUB_SHARDS  = var.shards
  }
}

output "dns_record" {
  description = "The GeoDNS record, if managed."
  value       = local.dns_enabled ? google_dns_record_set.edge[0].id : null
}
