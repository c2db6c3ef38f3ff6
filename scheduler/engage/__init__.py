"""Engagement: messages to people, comment moderation, profiles (pure parts first)."""
