"""Plumbing for the course notebooks: environment checks, AWS backends, display, scratch folders.

The lessons themselves (boto3 calls, unshare commands, Dockerfiles, SDK calls) stay in the notebooks.
"""
