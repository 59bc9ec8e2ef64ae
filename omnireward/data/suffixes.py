"""File suffixes of the packaged media kinds: what the loaders (data/media.py) accept and what the
kinds registry (data/kinds.py) names, written once."""

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff")
VIDEO_EXTENSIONS = (".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v", ".mpg", ".mpeg", ".flv")
AUDIO_EXTENSIONS = (".wav", ".flac", ".ogg", ".mp3", ".aiff", ".aif", ".au")
MESH_EXTENSIONS = (".obj", ".ply", ".stl", ".glb", ".gltf", ".off")
