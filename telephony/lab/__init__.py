"""telephony/lab"""
