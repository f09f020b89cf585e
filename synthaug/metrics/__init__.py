"""synthaug.metrics"""
