"""Depth maps: files in and out, editing with undo, and the views that colour them."""
