"""Engagement: messages, comments, profiles, actions, the webhook receiver and rules."""
