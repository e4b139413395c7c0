"""What several stages share: the example format, the publish root and its storage, HTML report parts."""
