"""synthaug.features"""
